"""Test-support code for mirror-vip: a simulated VPC on one machine.

Never imported by `python/mirror_vip`. The pieces:

- `fakeaws`  moto's server behind a fidelity-and-fault proxy served over HTTPS, with a call record
             (its parts: `answering`, `proxy`, `fidelity`, `faults`, `record`, `tls`)
- `imds`     an IMDSv2 emulator (tokens enforced) for one simulated instance
- `world`    the VPC, subnets, route tables and instances, built in the fake AWS
- `netns`    network namespaces, veths, and sockets opened inside a namespace
- `fabric`   router, client and two members in namespaces; the router follows the route table
- `client`   the client that keeps opening connections to the VIP (run inside the client namespace)
- `baseline` the seed article's delete-then-create claim, written anew, for comparison
- `drill`    `python -m sim.drill` (`make demo`): a failover, timed, ours beside the baseline
"""
