"""Probe: finetune a pipeline run's sequence phase with another loss, and score held-out notes.

Starts as the pipeline's finetune does (the run's models/sequence.pt LSTM and models/autoencoder.pt
decoder), trains `steps` steps of batch `bs` on `crop`-sample windows with the loss expression
`loss` (as train.loss), and scores the 70 held-out test notes before and every `every` steps.
    DATASET=quickstart/dataset python scripts/probe/finetune.py run=quickstart/runs/clk16 \\
        loss='spectral + 0.1*loudness' steps=660
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from sing_ray.checkpoint import load_checkpoint
from sing_ray.config import ModelConfig
from sing_ray.losses import build_loss
from sing_ray.models import build_sing
from sing_ray.train.steps import finetune_step

A = parse_args(dict(ds=os.environ.get("DATASET", "quickstart/dataset"), run="quickstart/runs/clk16", loss="spectral + 100*wav",
         steps=660, every=220, bs=16, lr=3e-4, crop=16128, seed=0))
torch.manual_seed(A["seed"])
np.random.seed(A["seed"])
m, data = load(A["ds"])
tr, te = data["train"], data["test"]
seq_ck = load_checkpoint(f"{A['run']}/models/sequence.pt")
ae_ck = load_checkpoint(f"{A['run']}/models/autoencoder.pt")
sing = build_sing(ModelConfig(**seq_ck["config"]["model"]), num_instruments=len(m["instruments"]))
sing.sequence.load_state_dict(seq_ck["state"])
sing.decoder.load_state_dict({k[len("decoder."):]: v for k, v in ae_ck["state"].items() if k.startswith("decoder.")})
loss_fn = build_loss(A["loss"])
opt = torch.optim.Adam(sing.parameters(), lr=A["lr"])
n = len(tr["wav"])


def held_out():
    sing.eval()
    with torch.no_grad():
        g = torch.cat([sing.synthesize(te["instrument"][i:i + 16], te["pitch"][i:i + 16], te["vel_idx"][i:i + 16])
                       for i in range(0, len(te["wav"]), 16)])
    sing.train()
    return score(g, te["wav"], te["pitch"].numpy())


print("FT@0 test:", json.dumps(held_out()), flush=True)
t0 = time.time()
for step in range(1, A["steps"] + 1):
    idx = torch.randint(0, n, (A["bs"],))
    loss = finetune_step(sing, opt, tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], tr["wav"][idx],
                         loss_fn, crop=A["crop"])
    if step % 100 == 0:
        print(f"ft {step} {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    if step % A["every"] == 0 or step == A["steps"]:
        print(f"FT@{step} test:", json.dumps(held_out()), f"{time.time() - t0:.0f}s", flush=True)
