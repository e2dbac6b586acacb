"""Probe: a decoder whose output is mostly a sum of the note's partials at the MIDI pitch.

The decoder body (as SING's, with the phase clock if Kd > 0) emits per frame the amplitudes
of the first H partials (softplus), spread between frames by the decoder's own squared-Hann
overlap-add, each multiplied by a sine at k * f0 from the note's start; the transposed conv
(zero at start) adds what the partials miss. The frames then carry envelopes, not phases.
Trains the autoencoder on `loss` (phase-blind), then the LSTM on its frames, then decodes the
held-out test notes. Usage:
    python scripts/probe/harmonic.py loss='mrstft' H=32 tag=h32
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from torch import nn
from sing_ray.dsp import hann_window
from sing_ray.losses import build_loss
from sing_ray.models.autoencoder import ConvolutionalDecoder, pad_wav, unpad_wav
from sing_ray.train.steps import sequence_step
sys.path.insert(0, '/tmp')
from partials import partial_pieces

OUT = os.environ.get("PROBE_OUT", "/tmp/sing-probe")
A = parse_args(dict(ds=os.environ.get("DATASET", "quickstart/dataset"), C=256, D=64, Hs=128, L=1, K=16, Kd=0, H=32,
                    ae_steps=1500, lr=1e-3, bs=8, crop=16128, seq_lr=3e-3, seq_steps=18000, every=9000, seed=0,
                    tag="harm", loss="mrstft", bias=-5.0, ft_steps=0, ft_lr=3e-4, ffts="2048,1024,512,256", ae_every=300, load="", lo=1.0, conv=1, tilt=0.0, a0=0.0, hscale=1.0, norm=0))
torch.manual_seed(A["seed"])
np.random.seed(A["seed"])
m, data = load(A["ds"])
tr, te = data["train"], data["test"]
n, NI = len(tr["wav"]), len(m["instruments"])


class Harmonic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ConvolutionalDecoder(A["D"], A["C"], clock_harmonics=A["Kd"])
        nn.init.zeros_(self.conv.synthesis.weight)
        self.amps = nn.Conv1d(A["C"], A["H"], 1)
        nn.init.constant_(self.amps.bias, A["bias"])
        if A["a0"]:
            k = torch.arange(1, A["H"] + 1, dtype=torch.float64)
            with torch.no_grad():
                self.amps.bias.copy_(torch.log(torch.expm1(A["a0"] / k ** A["tilt"])).float())
        self.register_buffer("win", hann_window(1024, squared=True).expand(A["H"], 1, 1024).contiguous())

    def forward(self, emb, pitch, offset=0):
        """emb (B, D, L) of a padded window starting at note sample `offset` - pad."""
        e = self.conv.with_clock(emb.transpose(1, 2), pitch, offset / 256).transpose(1, 2)
        h = self.conv.body(e)
        out = self.conv.synthesis(h).squeeze(1) if A["conv"] else 0.0
        g = F.layer_norm(h.transpose(1, 2), (h.shape[1],)).transpose(1, 2) if A["norm"] else h * A["hscale"]
        a = F.softplus(self.amps(g)).transpose(1, 2)                                # (B, L, H)
        return out + self.conv._overlap_add(partial_pieces(a, pitch, torch.as_tensor(offset) - 2304))

    def slow(self, emb, pitch, offset=0):
        e = self.conv.with_clock(emb.transpose(1, 2), pitch, offset / 256).transpose(1, 2)
        h = self.conv.body(e)
        out = self.conv.synthesis(h).squeeze(1)
        a = F.softplus(self.amps(h))
        env = F.conv_transpose1d(a, self.win, stride=256, groups=A["H"]) / 1.5       # (B, H, T)
        f0 = 440.0 * torch.pow(2.0, (pitch.double() - 69.0) / 12.0)
        k = torch.arange(1, A["H"] + 1, dtype=torch.float64)
        t = torch.arange(env.shape[-1], dtype=torch.float64) - 2304 + offset
        cyc = ((f0[:, None, None] * k[None, :, None] / 16000.0) * t[None, None, :]) % 1.0
        audible = (f0[:, None] * k[None, :] < 8000.0).float()[..., None]
        return out + (env * torch.sin(2 * math.pi * cyc).float() * audible).sum(1)


enc = Autoencoder(dimension=A["D"], channels=A["C"]).encoder
dec = Harmonic()
P = 2304
loss_fn = build_loss(A["loss"], mrstft_fft_sizes=tuple(int(f) for f in A["ffts"].split(",")), log_offset=A["lo"])
lsd = build_loss("spectral", log_offset=1e-4)
opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=A["lr"])
if A["load"]:
    state = torch.load(f"{OUT}/{A['load']}.ae.pt")
    enc.load_state_dict(state["enc"]); dec.load_state_dict(state["dec"])
    A["ae_steps"] = 0
t0 = time.time()
for step in range(A["ae_steps"]):
    idx = torch.randint(0, n, (A["bs"],))
    s = int(np.random.randint(0, (tr["wav"].shape[-1] - A["crop"]) // 256 + 1)) * 256
    x = tr["wav"][idx, s:s + A["crop"]]
    out = unpad_wav(dec(enc(pad_wav(x, P)), tr["pitch"][idx], s), P)
    loss = loss_fn(out, x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 250 == 0 or step < 250 and step % 25 == 0:
        print(f"ae {step} {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    if (step + 1) % A["ae_every"] == 0:
        with torch.no_grad():
            sl = slice(0, 70, 4)
            r = unpad_wav(dec(enc(pad_wav(te["wav"][sl], P)), te["pitch"][sl]), P)
            sc = score(r, te["wav"][sl], te["pitch"][sl].numpy())
            floor = float(lsd(r, te["wav"][sl]) / lsd(torch.zeros_like(r), te["wav"][sl]))
        print(f"AEQ {step + 1} floor {floor:.3f} level {sc['loud_med_db']:.1f} |{sc['loud_med_abs_db']:.1f}| ratio {sc['ratio']:.3f}", flush=True)


def decode_all(fn, d, bs=8):
    with torch.no_grad():
        return torch.cat([fn(i, slice(i, i + bs)) for i in range(0, len(d["wav"]), bs)])


enc.eval(); dec.eval()
rec = decode_all(lambda i, s: unpad_wav(dec(enc(pad_wav(te["wav"][s], P)), te["pitch"][s]), P), te)
print("AE test:", json.dumps(score(rec, te["wav"], te["pitch"].numpy())), f"{time.time() - t0:.0f}s", flush=True)
with torch.no_grad():
    emb = torch.cat([enc(pad_wav(tr["wav"][i:i + 32], P)) for i in range(0, n, 32)])
total = float(emb.var(dim=(0, 2)).mean())
within = float((emb - emb.mean(dim=2, keepdim=True)).square().mean())
print(f"EMB variance {total:.3g}, within notes {within:.3g} ({within / total:.0%})", flush=True)
torch.save({"enc": enc.state_dict(), "dec": dec.state_dict(), "A": A}, f"{OUT}/{A['tag']}.ae.pt")

seq = SequenceGenerator(NI, dimension=A["D"], hidden_size=A["Hs"], num_layers=A["L"], num_frames=emb.shape[-1],
                        phase_harmonics=A["K"])
opt = torch.optim.Adam(seq.parameters(), lr=A["seq_lr"])
chunks = math.ceil(emb.shape[-1] / 32)


def gen(i, s):
    return unpad_wav(dec(seq(te["instrument"][s], te["pitch"][s], te["vel_idx"][s]), te["pitch"][s]), P)


def held_out():
    seq.eval()
    g = decode_all(gen, te)
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
