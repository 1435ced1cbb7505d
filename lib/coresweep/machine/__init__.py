"""The machine: what it is (topology: packages, cores, SMT siblings, caches, NUMA, hybrid P/E,
cgroups), where work goes (placement plans), and switching SMT. Read-only except `smt`."""
