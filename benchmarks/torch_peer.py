"""The PyTorch peer: autoencoders trained as PyTorch AE libraries do (eager nn.Sequential, backward, Adam).

Imports neither JAX nor ae_jax, so a child process that runs only the peer (`members_job`) pays for torch
alone. PyTorch is optional (requirements-bench.txt).
"""

import os
import time

import numpy as np


def torch_train(x_ND: np.ndarray, dims: list[int], steps: int, batch: int, lr: float, seed: int,
                threads: int, device: str = "cpu") -> float:
    """Seconds to train one AE with layer widths `dims` (input first; ReLU after every layer but the last)."""
    # Random batches drawn from an in-memory tensor with replacement, as the engine draws them.
    import torch

    torch.set_num_threads(threads)
    x = torch.from_numpy(np.array(x_ND)).to(device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    layers = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(torch.nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(steps):
        x_BD = x[torch.randint(0, x.shape[0], (batch,), generator=gen, device=device)]
        loss = ((model(x_BD) - x_BD) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss.item()
    return time.perf_counter() - t0


def torch_threads(x_ND, dims, steps: int, batch: int, device: str = "cpu") -> tuple[int, dict[int, float]]:
    """The faster torch thread count for this model, and the seconds of the short run that chose it."""
    # OpenMP's 2 threads lost up to 100x to 1 on this shared 2-core machine; the peer should not pay for that.
    probe = {n: torch_train(x_ND, dims, min(steps, 10), batch, 1e-3, 0, n, device)
             for n in sorted({len(os.sched_getaffinity(0)), 1}, reverse=True)}
    return min(probe, key=probe.get), probe


def members_job(job: dict) -> dict:
    """Child process: every member of `job["members"]` trained one after another on the .npy at job["x"]."""
    import torch

    x = np.load(job["x"])
    threads, device = job["threads"], job["device"]
    first = job["members"][0]
    probe = None
    if not threads:  # the faster of 1 and all threads, on the largest member
        big = max(job["members"], key=lambda m: sum(a * b for a, b in zip(m["dims"], m["dims"][1:])))
        threads, probe = torch_threads(x, big["dims"], 50, big["batch"], device)
    torch_train(x, first["dims"], 2, first["batch"], 1e-3, 0, threads, device)  # first-call costs, once
    per_member = [torch_train(x, m["dims"], m["steps"], m["batch"], m["lr"], m["seed"], threads, device)
                  for m in job["members"]]
    return {"per_member_s": per_member, "threads": torch.get_num_threads(), "thread_probe": probe,
            "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__}
