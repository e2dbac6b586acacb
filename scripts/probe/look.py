"""Probe: score a run's autoencoder reconstructions and its generated notes on the held-out test
notes, and draw both beside the real ones. Usage:
    python scripts/probe/look.py run=/tmp/runs/p64 ds=quickstart/dataset out=/tmp/look.png
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from sing_ray.checkpoint import load_model
from sing_ray.figures import plot_spectrogram_grid

A = parse_args(dict(run="/tmp/runs/p64", ds="quickstart/dataset", out="/tmp/look.png", n=70))
m, data = load(A["ds"])
te = {k: v[:A["n"]] for k, v in data["test"].items()}
ae, _ = load_model(f"{A['run']}/models/autoencoder.pt")
sing, _ = load_model(f"{A['run']}/models/finetune.pt")
with torch.no_grad():
    rec = torch.cat([ae(te["wav"][i:i + 8], te["pitch"][i:i + 8]) for i in range(0, len(te["wav"]), 8)])
    gen = torch.cat([sing.synthesize(te["instrument"][i:i + 8], te["pitch"][i:i + 8], te["vel_idx"][i:i + 8])
                     for i in range(0, len(te["wav"]), 8)])
print("AE ", json.dumps(score(rec, te["wav"], te["pitch"].numpy())), flush=True)
print("GEN", json.dumps(score(gen, te["wav"], te["pitch"].numpy())), flush=True)
pick = [i for i in range(len(te["wav"])) if te["velocity"][i] >= 100][:: max(1, len(te["wav"]) // 40)][:6]
plot_spectrogram_grid(np.stack([te["wav"][i].numpy() for i in pick for _ in (0,)]),
                      np.stack([rec[i].numpy() for i in pick]), [f"AE {te['note_str'][i]}" for i in pick], A["out"])
plot_spectrogram_grid(np.stack([te["wav"][i].numpy() for i in pick]),
                      np.stack([gen[i].numpy() for i in pick]), [f"GEN {te['note_str'][i]}" for i in pick],
                      A["out"].replace(".png", "-gen.png"))
