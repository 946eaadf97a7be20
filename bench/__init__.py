"""`make bench` (`python -m bench`): how fast the VIP moves, ours beside the seed's algorithm and
the limit, against the fake AWS (sim.fakeaws) with injected latency and TLS set-up.

- `vpc`        the VPCs (one per route-table count) and the member's IMDS identity
- `measure`    run one process (or one warm reconcile) and read its figures off the call record
- `rows`       what each row runs: ours cold / cached / warm, the baseline, the limit
- `coldstart`  where a fresh process's time goes before its first EC2 request
- `doc`        docs/benchmarks.md and its plot
- `procs/`     the scripts the child processes run (files, not modules: started as scripts, so
               no package import is timed that the product would not pay)

Test support only: never imported by `python/mirror_vip`.
"""
