"""Held-out quality against sequence-phase training: the curve docs/quality.md quotes.

Loads a trained autoencoder ($PROBE_OUT/<ae>.ae.pt from `pipe.py stage=ae ...`), then trains the
sequence generator alone (one thread, batch `bs`, lr `lr` held until `decay_at` chunk steps, then
cosine down to lr/10 by `steps`) and every `every` chunk steps decodes the 70 held-out test notes
with the frozen decoder and scores them (in tune, level, spectral L1 against silence's). Usage:
    DATASET=/work/data/fluidr3-ds python scripts/probe/seqcurve.py ae=aeP2 steps=170000 every=27000
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from sing_ray.train.steps import sequence_step

OUT = os.environ.get("PROBE_OUT", "/tmp/sing-probe")
A = parse_args(dict(ds=os.environ.get("DATASET", "quickstart/dataset"), ae="aeP2", C=256, D=64, H=128, L=1, K=16,
         bs=8, lr=3e-3, steps=170000, decay_at=10**9, every=27000, seed=0, tag="curve"))
torch.manual_seed(A["seed"])
m, data = load(A["ds"])
tr, te = data["train"], data["test"]
ae = Autoencoder(dimension=A["D"], channels=A["C"])
ae.load_state_dict(torch.load(f"{OUT}/{A['ae']}.ae.pt")["ae"])
ae.eval()
n = len(tr["wav"])
with torch.no_grad():
    emb = torch.cat([ae.encode(tr["wav"][i:i + 32]) for i in range(0, n, 32)])
seq = SequenceGenerator(len(m["instruments"]), dimension=A["D"], hidden_size=A["H"], num_layers=A["L"],
                        num_frames=emb.shape[-1], phase_harmonics=A["K"])
sing = SING(len(m["instruments"]), dimension=A["D"], channels=A["C"], hidden_size=A["H"], num_layers=A["L"],
            phase_harmonics=A["K"])
sing.decoder.load_state_dict(ae.decoder.state_dict())
opt = torch.optim.Adam(seq.parameters(), lr=A["lr"])
chunks = math.ceil(emb.shape[-1] / 32)


def held_out():
    sing.sequence.load_state_dict(seq.state_dict())
    sing.eval()
    with torch.no_grad():
        g = torch.cat([sing(te["instrument"][i:i + 16], te["pitch"][i:i + 16], te["vel_idx"][i:i + 16])
                       for i in range(0, len(te["wav"]), 16)])
    return score(g, te["wav"], te["pitch"].numpy())


t0, step, train_s = time.time(), 0, 0.0
while step < A["steps"]:
    if step >= A["decay_at"]:
        frac = min(1.0, (step - A["decay_at"]) / max(1, A["steps"] - A["decay_at"]))
        for g in opt.param_groups:
            g["lr"] = A["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
    idx = torch.randint(0, n, (A["bs"],))
    t1 = time.time()
    loss = sequence_step(seq, opt, tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], emb[idx], 32)
    train_s += time.time() - t1
    before, step = step, step + chunks
    if step // A["every"] != before // A["every"] or step >= A["steps"]:
        s = held_out()
        print(f"CURVE steps={step} epochs={step / chunks * A['bs'] / n:.0f} train_min={train_s / 60:.1f} "
              f"loss={loss.item():.6f} lr={opt.param_groups[0]['lr']:.1e} " + json.dumps(s), flush=True)
torch.save(seq.state_dict(), f"{OUT}/{A['tag']}.seq.pt")
