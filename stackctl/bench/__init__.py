"""`bench`: models measured the same way (prompts, client, statistics, reports).

Benchmarks of the project itself live in perf/ at the top level."""
