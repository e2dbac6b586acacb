"""Probe: a decoder told the phase clock, so the encoder's frames need not turn with the phase.

The decoder's input is the frame (D) beside the cos/sin of the note's first `Kd` partials'
phases at that frame (2 Kd, from the MIDI pitch, as the LSTM's clock). Trains the
autoencoder (`wav` warm-up, then `ae_loss`), reports held-out reconstruction and how much of
the frames' variance lies within notes, then trains the sequence generator on the frames and
decodes the held-out test notes every `every` chunk steps. Usage:
    DATASET=/work/data/fluidr3-ds python scripts/probe/clocked.py Kd=16 smooth=0 tag=clk
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from sing_ray.losses import spectral_loss
from sing_ray.models.autoencoder import ConvolutionalDecoder, pad_wav, unpad_wav
from sing_ray.models.sequence import FRAME_HOP, phase_clock
from sing_ray.train.steps import sequence_step

OUT = os.environ.get("PROBE_OUT", "/tmp/sing-probe")
os.makedirs(OUT, exist_ok=True)
A = parse_args(dict(ds=os.environ.get("DATASET", "quickstart/dataset"), C=256, D=64, H=128, L=1, K=16, Kd=16,
         ae_steps=1500, warm=200, lr=3e-4, bs=8, crop=16128, smooth=0.0, seq_lr=3e-3,
         seq_steps=27000, every=9000, seed=0, tag="clk", load="", wav=100.0, loud=0.0))
torch.manual_seed(A["seed"])
np.random.seed(A["seed"])
m, data = load(A["ds"])
tr, te = data["train"], data["test"]
n, NI = len(tr["wav"]), len(m["instruments"])

ae = Autoencoder(dimension=A["D"], channels=A["C"])
ae.decoder = ConvolutionalDecoder(A["D"] + 2 * A["Kd"], A["C"])
P = ae.pad


def clock(pitch, start, length):
    return phase_clock(pitch, start, length, A["Kd"], FRAME_HOP).transpose(1, 2)


def decode(frames, pitch, start=0):
    if A["Kd"]:
        frames = torch.cat([frames, clock(pitch, start, frames.shape[-1])], dim=1)
    return ae.decoder(frames)


def wav_term(o, t):
    return F.mse_loss(o, t) * 100.0


def log_rms(x):
    return 0.5 * torch.log(x.unfold(-1, 1024, 256).square().mean(-1) + 1e-10)


def ae_loss(o, t):
    loss = spectral_loss(o, t) + A["wav"] / 100.0 * wav_term(o, t)
    if A["loud"]:
        loss = loss + A["loud"] * (log_rms(o) - log_rms(t)).abs().mean()
    return loss


if A["load"]:
    ae.load_state_dict(torch.load(f"{OUT}/{A['load']}.ae.pt")["ae"])
    A["ae_steps"] = 0
opt = torch.optim.Adam(ae.parameters(), lr=A["lr"])
t0 = time.time()
for step in range(A["ae_steps"]):
    idx = torch.randint(0, n, (A["bs"],))
    s = int(np.random.randint(0, (tr["wav"].shape[-1] - A["crop"]) // 256 + 1)) * 256
    x = tr["wav"][idx, s:s + A["crop"]]
    e = ae.encoder(pad_wav(x, P))
    out = unpad_wav(decode(e, tr["pitch"][idx], s // 256), P)
    loss = (wav_term if step < A["warm"] else ae_loss)(out, x)
    if A["smooth"]:
        loss = loss + A["smooth"] * (e[..., 1:] - e[..., :-1]).square().mean() / e.square().mean().detach().clamp_min(1e-8)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 250 == 0:
        print(f"ae {step} {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
ae.eval()
if A["ae_steps"]:
    torch.save({"ae": ae.state_dict(), "A": A}, f"{OUT}/{A['tag']}.ae.pt")
with torch.no_grad():
    rec = torch.cat([unpad_wav(decode(ae.encoder(pad_wav(te["wav"][i:i + 16], P)), te["pitch"][i:i + 16]), P)
                     for i in range(0, len(te["wav"]), 16)])
    print("AE test:", json.dumps(score(rec, te["wav"], te["pitch"].numpy())), f"{time.time() - t0:.0f}s", flush=True)
    emb = torch.cat([ae.encoder(pad_wav(tr["wav"][i:i + 32], P)) for i in range(0, n, 32)])
total = float(emb.var(dim=(0, 2)).mean())
within = float((emb - emb.mean(dim=2, keepdim=True)).square().mean())
step_diff = float((emb[..., 1:] - emb[..., :-1]).square().mean())
print(f"EMB variance {total:.3g}, within notes {within:.3g} ({within / total:.0%}), "
      f"frame-to-frame squared step {step_diff:.3g}", flush=True)

seq = SequenceGenerator(NI, dimension=A["D"], hidden_size=A["H"], num_layers=A["L"], num_frames=emb.shape[-1],
                        phase_harmonics=A["K"])
opt = torch.optim.Adam(seq.parameters(), lr=A["seq_lr"])
chunks = math.ceil(emb.shape[-1] / 32)


def held_out():
    seq.eval()
    with torch.no_grad():
        g = torch.cat([unpad_wav(decode(seq(te["instrument"][i:i + 16], te["pitch"][i:i + 16], te["vel_idx"][i:i + 16]),
                                        te["pitch"][i:i + 16]), P) for i in range(0, len(te["wav"]), 16)])
    seq.train()
    return score(g, te["wav"], te["pitch"].numpy())


step, train_s = 0, 0.0
while step < A["seq_steps"]:
    idx = torch.randint(0, n, (A["bs"],))
    t1 = time.time()
    loss = sequence_step(seq, opt, tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], emb[idx], 32)
    train_s += time.time() - t1
    before, step = step, step + chunks
    if step // A["every"] != before // A["every"] or step >= A["seq_steps"]:
        print(f"CURVE steps={step} epochs={step / chunks * A['bs'] / n:.0f} train_min={train_s / 60:.1f} "
              f"loss={loss.item():.6f} " + json.dumps(held_out()), flush=True)
torch.save(seq.state_dict(), f"{OUT}/{A['tag']}.seq.pt")
