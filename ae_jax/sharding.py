"""The member axis over all local devices: a 1-D mesh, members padded to a multiple of the devices,
and how one member's computation is applied along that axis (`over_members`).

Members are independent, so sharding their axis needs no communication during training; the data
is replicated. `AxisType.Auto` keeps the classic propagation (explicit axes reject indexing a
replicated array with member-sharded indices under vmap, jax.make_mesh's default explicit axes raise ShardingTypeError there).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

AXIS = "members"


def member_mesh() -> jax.sharding.Mesh | None:
    """A mesh over the local devices, or None on a single device (nothing to shard)."""
    n = jax.local_device_count()
    if n == 1:
        return None
    return jax.make_mesh((n,), (AXIS,), axis_types=(AxisType.Auto,), devices=jax.local_devices())


def member_invariant() -> bool:
    """Whether `over_members` maps members one at a time (bit-identical results whatever the group):
    on the CPU backend, where a vmapped member's reductions rounded by the group's size."""
    return jax.default_backend() == "cpu"


def over_members(fn, in_axes: tuple, mesh: jax.sharding.Mesh | None):
    """`fn` (one member's computation) along the member axis of the arguments (`in_axes`: that axis
    per argument, None for shared ones); outputs are stacked on axis 0.

    On the CPU: one member at a time (`lax.map`), each device mapping its own shard (`shard_map`).
    Why not vmap there: XLA:CPU chooses how to fuse and vectorise a reduction (and whether to hand it
    to YNNPACK) by the whole operand shape, so a vmapped member's loss and bias gradients changed in
    the last bit with the number of members in its group or on its device, and over thousands of
    steps that grew to percent-level differences in its metrics. A mapped member always runs the same
    one-member program, so its numbers do not depend on its group mates, its shard or the device
    count (docs/reliability.md). Elsewhere (GPU) vmap keeps members in parallel kernels.
    """
    if not member_invariant():
        return jax.vmap(fn, in_axes=in_axes)

    def mapped(*args):
        stacked = [jax.tree.map(lambda a, ax=ax: jnp.moveaxis(a, ax, 0), arg)
                   for arg, ax in zip(args, in_axes) if ax is not None]

        def one(member_args):
            it = iter(member_args)
            return fn(*(arg if ax is None else next(it) for arg, ax in zip(args, in_axes)))
        return jax.lax.map(one, stacked)

    # the jitted program keeps the member function's name (compilation-cache entries, profiles)
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "over_members")
    mapped.__name__ = name
    if mesh is None:
        return mapped
    spec = lambda ax: P() if ax is None else P(*[None] * ax, AXIS)
    # No collective inside: every device maps its own members over its replica of the data.
    per_device = jax.shard_map(mapped, mesh=mesh, in_specs=tuple(spec(ax) for ax in in_axes), out_specs=P(AXIS))

    def over(*args):
        ax, arg = next((ax, arg) for ax, arg in zip(in_axes, args) if ax is not None)
        # Unpadded member counts (a direct call, not `fit`) run on one device: the same numbers.
        split = jax.tree.leaves(arg)[0].shape[ax] % mesh.size == 0
        return (per_device if split else mapped)(*args)
    over.__name__ = name
    return over


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
