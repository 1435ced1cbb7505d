"""Analysis: statistics of a run (medians, bootstrap CIs, noise flags), CI-aware "best"
selection and the verdicts the reports print."""

from coresweep.analysis.stats import (
    CV_NOISY,
    METRICS,
    bootstrap_median_ci,
    describe,
    processes_disagree,
    same_work,
    summarize,
    token_latency_stats,
)

__all__ = ["CV_NOISY", "METRICS", "bootstrap_median_ci", "describe", "processes_disagree",
           "same_work", "summarize", "token_latency_stats"]
