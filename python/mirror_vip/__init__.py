"""mirror-vip: a virtual IP that follows the IRIS mirror primary across AWS availability zones.

The faces: `python -m mirror_vip` (cli) and IRIS (bridge); both call `mirror_vip.api`.
"""

__version__ = "0.1.0"
