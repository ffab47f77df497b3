"""The member axis over all local devices: a 1-D mesh, members padded to a multiple of the devices.

Members are independent, so sharding their axis needs no communication during training; the data
is replicated. `AxisType.Auto` keeps the classic propagation (explicit axes reject indexing a
replicated array with member-sharded indices under vmap, jax.make_mesh's default explicit axes raise ShardingTypeError there).
"""

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

AXIS = "members"


def member_mesh() -> jax.sharding.Mesh | None:
    """A mesh over the local devices, or None on a single device (nothing to shard)."""
    n = jax.local_device_count()
    if n == 1:
        return None
    return jax.make_mesh((n,), (AXIS,), axis_types=(AxisType.Auto,), devices=jax.local_devices())


def padded_size(m: int, mesh: jax.sharding.Mesh | None) -> int:
    n = 1 if mesh is None else mesh.size
    return -(-m // n) * n


def pad_members(tree, m_padded: int):
    """Repeat the last member to fill the padding; padded members are trained and thrown away."""
    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[-1:], m_padded - len(a), axis=0)]) if m_padded > len(a) else a
    return jax.tree.map(pad, tree)


def shard_members(tree, mesh):
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P(AXIS)))


def replicate(tree, mesh):
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))
