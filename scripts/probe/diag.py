"""Root-cause probe: `python scripts/probe/diag.py data` (the data's level and STFT bins), or
`python scripts/probe/diag.py LOSS LR STEPS CHANNELS` (output level, dead ReLUs, gradient norms
of an autoencoder over its first steps; LOSS one of paper, eps1e-6, mrstft, wav).
"""
import os, sys, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *
from sing_ray.dsp import stft_magnitude
torch.manual_seed(0)
m, data = load(os.environ.get("DATASET", "quickstart/dataset"))
tr = data["train"]; wav = tr["wav"]
if sys.argv[1] == "data":
    db = rms_db(wav.numpy())
    print("train RMS dBFS: median %.1f, 10%% %.1f, 90%% %.1f; peak median %.3f" % (np.median(db), np.percentile(db, 10), np.percentile(db, 90), np.median(wav.abs().amax(1).numpy())))
    p = stft_magnitude(wav[:64]).square()
    for thr in (1e-4, 1e-2, 1, 10, 100):
        print(f"share of STFT bins with power < {thr:g}: {(p < thr).float().mean():.3f}")
    lp = torch.log1p(p)
    print("share of log1p(power) total carried by bins with power>=1: %.3f" % (lp[p >= 1].sum() / lp.sum()))
    print("silence spectral L1 (mean log1p target): %.4f" % lp.mean())
    sys.exit()
loss_name, lr, steps, C = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import auraloss
from sing_ray.losses import spectral_loss
mr = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[2048, 1024, 512, 256, 128, 64], hop_sizes=[512, 256, 128, 64, 32, 16], win_lengths=[2048, 1024, 512, 256, 128, 64], eps=1e-7)
def logp(x, eps):
    S = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True)
    return torch.log(eps + S.real ** 2 + S.imag ** 2)
losses = {
    "paper": lambda o, t: spectral_loss(o, t),
    "eps1e-6": lambda o, t: (logp(o, 1e-6) - logp(t, 1e-6)).abs().mean(),
    "mrstft": lambda o, t: mr(o.unsqueeze(1), t.unsqueeze(1)),
    "wav": lambda o, t: F.mse_loss(o, t),
}
loss_fn = losses[loss_name]
ae = Autoencoder(dimension=32, channels=C)
opt = torch.optim.Adam(ae.parameters(), lr=lr)
dec_relus = [i for i, mod in enumerate(ae.decoder.body) if isinstance(mod, torch.nn.ReLU)]
acts = {}
for i in dec_relus:
    ae.decoder.body[i].register_forward_hook(lambda mod, inp, out, i=i: acts.__setitem__(i, out.detach()))
n = len(wav)
with torch.no_grad():
    x = wav[:8]; y = ae(x)
    print("init: output RMS %.2f dBFS vs data %.2f dBFS" % (np.median(rms_db(y.numpy())), np.median(rms_db(x.numpy()))))
t0 = time.time()
history = {}   # step -> {weight name: gradient norm}, every 25 steps
for step in range(steps + 1):
    idx = torch.randint(0, n, (8,))
    x = wav[idx]
    out = ae(x)
    loss = loss_fn(out, x)
    opt.zero_grad(); loss.backward()
    if step % 25 == 0:
        g = {name: p.grad.norm().item() for name, p in ae.named_parameters() if p.grad is not None and name.endswith("weight")}
        dead = [float((acts[i].amax(dim=(0, 2)) <= 0).float().mean()) for i in dec_relus]
        sil = float(table1_metrics(torch.zeros_like(x), x)["spectral_l1"].mean()); sl = float(table1_metrics(out.detach(), x)["spectral_l1"].mean())
        history[step] = g
        print(f"step {step:4d} loss {loss.item():.4f} out {np.median(rms_db(out.detach().numpy())):6.1f} dB target {np.median(rms_db(x.numpy())):6.1f} dB  specL1/silence {sl/sil:.3f} dead {['%.2f'%d for d in dead]} grad enc.analysis {g['encoder.analysis.weight']:.2e} dec.body0 {g['decoder.body.0.weight']:.2e} dec.synth {g['decoder.synthesis.weight']:.2e} ({time.time()-t0:.0f}s)", flush=True)
    opt.step()
# Every layer's weight gradient norm at five of the logged steps, as a Markdown table.
shown = sorted({0, steps // 4 // 25 * 25, steps // 2 // 25 * 25, 3 * steps // 4 // 25 * 25, steps // 25 * 25})
print("| layer | " + " | ".join(f"step {k}" for k in shown) + " |")
print("| --- | " + " | ".join("---:" for _ in shown) + " |")
for name in history[0]:
    print(f"| `{name}` | " + " | ".join(f"{history[k][name]:.1e}" for k in shown) + " |")
