"""Probe: finetune a pipeline run's sequence phase with another loss, and score held-out notes.

Starts as the pipeline's finetune does (the run's models/sequence.pt LSTM and models/autoencoder.pt
decoder), trains `steps` steps of batch `bs` on `crop`-sample windows with the loss expression
`loss` (as train.loss), and scores the 70 held-out test notes before and every `every` steps.
    DATASET=quickstart/dataset python scripts/probe/finetune.py run=quickstart/runs/clk16 \\
        loss='spectral + 0.1*loudness' steps=660

With `interp=W` (W > 0; harmonic frames and a run trained with train.sequence_interpolated),
each step also draws `interp_bs` of the run's notes interpolated between trained pitches
(embeddings/interpolated) and adds W times the sequence phase's loss (FrameLoss with the
run's sequence_loudness and sequence_audible) between the LSTM's frames and theirs: the
pitches the finetune's notes leave out stay tied to their neighbours.
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
         steps=660, every=220, bs=16, lr=3e-4, crop=16128, seed=0, interp=0.0, interp_bs=16, only=""))
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
# only=sequence or only=decoder: fine-tune that part alone, the other frozen
opt = torch.optim.Adam(getattr(sing, A["only"]).parameters() if A["only"] else sing.parameters(), lr=A["lr"])
n = len(tr["wav"])
if A["interp"]:
    import glob as _glob

    import pyarrow as pa
    from sing_ray.losses import FrameLoss
    from sing_ray.models.autoencoder import HARMONIC_SCALE
    emb = pa.concat_tables([pq.read_table(f) for f in sorted(_glob.glob(f"{A['run']}/embeddings/interpolated/*.parquet"))])
    shape = json.loads(emb.schema.field("embedding").metadata[b"ARROW:extension:metadata"])
    ip = {"frames": torch.from_numpy(np.stack([np.asarray(x, dtype=np.float32) for x in
                                               emb.column("embedding").to_numpy(zero_copy_only=False)]).reshape(-1, *shape)),
          "instrument": torch.tensor(emb.column("instrument").to_pylist()),
          "pitch": torch.tensor(emb.column("pitch").to_pylist()),
          "vel_idx": velocity_indices(torch.tensor(emb.column("velocity").to_pylist()))}
    t = seq_ck["config"]["train"]
    frame_loss = FrameLoss(t.get("sequence_loudness", 0.0), HARMONIC_SCALE, t.get("sequence_audible", 0.0))
    print(f"{len(ip['pitch'])} interpolated notes, weight {A['interp']}", flush=True)


def held_out():
    sing.eval()
    with torch.no_grad():
        g = torch.cat([sing.synthesize(te["instrument"][i:i + 16], te["pitch"][i:i + 16], te["vel_idx"][i:i + 16])
                       for i in range(0, len(te["wav"]), 16)])
    sing.train()
    dg, dr = rms_db(g.numpy()), rms_db(te["wav"].numpy())
    quiet = [f"{te['note_str'][i]} {dg[i]:.1f} (real {dr[i]:.1f})" for i in np.argsort(dg) if min(dg[i], dr[i]) < -57]
    print("notes under -57 dBFS, generated or real:", "; ".join(quiet), flush=True)
    return score(g, te["wav"], te["pitch"].numpy())


print("FT@0 test:", json.dumps(held_out()), flush=True)
t0 = time.time()
for step in range(1, A["steps"] + 1):
    idx = torch.randint(0, n, (A["bs"],))
    if not A["interp"]:
        loss = finetune_step(sing, opt, tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], tr["wav"][idx],
                             loss_fn, crop=A["crop"])
    else:
        opt.zero_grad(set_to_none=True)
        start = int(np.random.randint(0, tr["wav"].shape[-1] - A["crop"] + 1))
        out = sing(tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], span=(start, start + A["crop"]))
        loss = loss_fn(out, tr["wav"][idx, start:start + A["crop"]])
        j = torch.randint(0, len(ip["pitch"]), (A["interp_bs"],))
        frames = sing.sequence(ip["instrument"][j], ip["pitch"][j], ip["vel_idx"][j])
        (loss + A["interp"] * frame_loss(frames, ip["frames"][j])).backward()
        opt.step()
    if step % 100 == 0:
        print(f"ft {step} {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    if step % A["every"] == 0 or step == A["steps"]:
        print(f"FT@{step} test:", json.dumps(held_out()), f"{time.time() - t0:.0f}s", flush=True)
