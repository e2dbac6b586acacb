"""GPU check of the partials decoder: CUDA against CPU, bfloat16 autocast, notes per second (randomly initialised presets).

Run from the repository root on a machine with CUDA: `PYTHONPATH=. python scripts/probe/gpucheck.py`.
"""
import time, torch
from sing_ray.config import load_config
from sing_ray.models import build_sing
torch.manual_seed(0)
for preset in ("quick", "small", "paper"):
    m = load_config(preset).model
    model = build_sing(m, 16).eval()
    with torch.no_grad():
        B = 4
        args = (torch.arange(B) % 16, torch.tensor([40, 60, 72, 84])[:B], torch.tensor([1, 3, 4, 0])[:B])
        cpu = model(*args).float()
        g = model.cuda()
        gargs = tuple(a.cuda() for a in args)
        gpu = g(*gargs).float().cpu()
        rel = ((gpu - cpu).norm() / cpu.norm().clamp_min(1e-12)).item()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf = g(*gargs).float().cpu()
        relb = ((bf - cpu).norm() / cpu.norm().clamp_min(1e-12)).item()
        NB = 256 if preset != "paper" else 64
        bargs = (torch.randint(0, 16, (NB,)).cuda(), torch.randint(24, 96, (NB,)).cuda(), torch.randint(0, 5, (NB,)).cuda())
        for dt in (None, torch.bfloat16):
            ctx = torch.autocast("cuda", dtype=dt) if dt else torch.autocast("cuda", enabled=False)
            with ctx:
                g(*bargs); torch.cuda.synchronize()
                t = time.perf_counter(); n = 0
                while time.perf_counter() - t < 3:
                    g(*bargs); n += NB
                torch.cuda.synchronize(); dtt = time.perf_counter() - t
            print(f"{preset}: partials {m.partials} conv {m.conv_synthesis} | cuda vs cpu rel err {rel:.2e}, bf16 {relb:.2e} | "
                  f"{'bf16' if dt else 'fp32'} batch {NB}: {n/dtt:.0f} notes/s = {4*n/dtt:.0f} s of audio per s", flush=True)
        model = g.cpu()
