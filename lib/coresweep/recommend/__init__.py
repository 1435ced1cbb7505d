"""What to do: ready-to-paste configurations for the recommended points (configs) and the
motivating study's claims checked on this machine (claims)."""
