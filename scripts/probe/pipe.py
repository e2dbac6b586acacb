"""SING recipe probe: one process trains the three phases (plain torch, no Ray) and scores
held-out test notes after each (in tune, loudness, spectral L1 against silence). Usage:
    DATASET=quickstart/dataset python scripts/probe/pipe.py ae_loss=paper+wav warm=200 tag=x
Keys are the defaults in A below; checkpoints go to $PROBE_OUT (default /tmp/sing-probe).
"""
import os, sys, time, json, math
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *
OUT = os.environ.get("PROBE_OUT", "/tmp/sing-probe"); os.makedirs(OUT, exist_ok=True)
import auraloss
A = dict(ds=os.environ.get("DATASET", "quickstart/dataset"), C=256, D=64, H=128, L=1, ae_steps=1500, seq_steps=6000, ft_steps=600,
         ae_loss="wav", ft_loss="wav", lr=3e-4, seq_lr=3e-3, ft_lr=3e-4, bs=8, crop=16128, ft_crop=16128,
         eps=1e-5, seed=0, warm=0, tag="x", score_every=0, K=0, ft_warm=0, stage="all", load="")
for a in sys.argv[1:]:
    k, v = a.split("="); A[k] = type(A[k])(v) if not isinstance(A[k], str) else v
print(A, flush=True)
torch.manual_seed(A["seed"]); np.random.seed(A["seed"])
m, data = load(A["ds"])
tr, te = data["train"], data["test"]
NI = len(m["instruments"])

def mr(w_sc, w_log, w_lin, eps):
    f = [2048, 1024, 512, 256, 128, 64]
    mod = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=f, hop_sizes=[x // 4 for x in f], win_lengths=f,
                                               w_sc=w_sc, w_log_mag=w_log, w_lin_mag=w_lin, eps=eps)
    return lambda o, t: mod(o.unsqueeze(1), t.unsqueeze(1))
from sing_ray.losses import spectral_loss
def logrms(x):
    fr = x.unfold(-1, 1024, 256)
    return 0.5 * torch.log(fr.square().mean(-1) + 1e-10)
TERMS = {"wav": lambda o, t: F.mse_loss(o, t) * 100.0,  # x100: MSE on -30 dBFS audio is ~1e-3
         "paper": spectral_loss,
         "mrstft": mr(1, 1, 0, 1e-7),
         "lin": mr(0, 0, 1, 1e-7),
         "sclin": mr(1, 0, 1, 1e-7),
         "logf": mr(0, 1, 0, A["eps"]),
         "sc": mr(1, 0, 0, 1e-7),
         "loud": lambda o, t: (logrms(o) - logrms(t)).abs().mean()}
def parse(expr):
    terms = []
    for part in expr.split("+"):
        w, _, n = part.rpartition("*")
        terms.append((float(w) if w else 1.0, TERMS[n]))
    return lambda o, t: sum(w * f(o, t) for w, f in terms)

def crop(x, L):
    if L >= x.shape[-1]: return x, 0
    s = int(np.random.randint(0, (x.shape[-1] - L) // 256 + 1)) * 256
    return x[:, s:s + L], s

ae = Autoencoder(dimension=A["D"], channels=A["C"])
if A["load"]:
    ck = torch.load(f"{OUT}/{A['load']}.ae.pt"); ae.load_state_dict(ck["ae"]); A["ae_steps"] = 0
opt = torch.optim.Adam(ae.parameters(), lr=A["lr"])
lf = parse(A["ae_loss"]); wf = parse("wav")
n = len(tr["wav"]); t0 = time.time()
for step in range(A["ae_steps"]):
    x, _ = crop(tr["wav"][torch.randint(0, n, (A["bs"],))], A["crop"])
    loss = (wf if step < A["warm"] else lf)(ae(x), x)
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 250 == 0: print(f"ae {step} {loss.item():.4f} {time.time()-t0:.0f}s", flush=True)
ae.eval()
if not A["load"]: torch.save({"ae": ae.state_dict()}, f"{OUT}/{A['tag']}.ae.pt")
with torch.no_grad():
    rec = torch.cat([ae(te["wav"][i:i + 16]) for i in range(0, len(te["wav"]), 16)])
if not A["load"]: print("AE test:", json.dumps(score(rec, te["wav"], te["pitch"].numpy())), f"{time.time()-t0:.0f}s", flush=True)
if A["stage"] == "ae": sys.exit()
with torch.no_grad():
    emb = torch.cat([ae.encode(tr["wav"][i:i + 32]) for i in range(0, n, 32)])
print("emb variance (MSE of predicting the mean frame):", float(emb.var(dim=(0, 2)).mean()), "of the per-note mean:", float((emb - emb.mean(dim=2, keepdim=True)).square().mean()), flush=True)
seq = SequenceGenerator(NI, dimension=A["D"], hidden_size=A["H"], num_layers=A["L"], num_frames=emb.shape[-1], phase_harmonics=A["K"])
opt = torch.optim.Adam(seq.parameters(), lr=A["seq_lr"])
from sing_ray.train.steps import sequence_step
import os.path
if A["load"] and os.path.exists(f"{OUT}/{A['load']}.seq.pt"):
    seq.load_state_dict(torch.load(f"{OUT}/{A['load']}.seq.pt")); A["seq_steps"] = 0
for step in range(A["seq_steps"] // 9):
    idx = torch.randint(0, n, (A["bs"],))
    l = sequence_step(seq, opt, tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], emb[idx], 32)
    if step % 200 == 0: print(f"seq {step*9} {l.item():.4f} {time.time()-t0:.0f}s", flush=True)
if A["seq_steps"]: torch.save(seq.state_dict(), f"{OUT}/{A['tag']}.seq.pt")
if A["ft_steps"] == 0 and A["seq_steps"] == 0: sys.exit()
sing = SING(NI, dimension=A["D"], channels=A["C"], hidden_size=A["H"], num_layers=A["L"], phase_harmonics=A["K"])
sing.decoder.load_state_dict(ae.decoder.state_dict()); sing.sequence.load_state_dict(seq.state_dict())
def gen_test():
    sing.eval()
    with torch.no_grad():
        g = torch.cat([sing(te["instrument"][i:i+16], te["pitch"][i:i+16], te["vel_idx"][i:i+16]) for i in range(0, len(te["wav"]), 16)])
    sing.train(); return g
if A["seq_steps"]:
    tidx = torch.arange(0, n, 19)[:40]; sing.eval()
    with torch.no_grad(): gtr = sing(tr["instrument"][tidx], tr["pitch"][tidx], tr["vel_idx"][tidx])
    sing.train()
    print("SEQ train:", json.dumps(score(gtr, tr["wav"][tidx], tr["pitch"][tidx].numpy())), flush=True)
if A["seq_steps"]: print("SEQ test:", json.dumps(score(gen_test(), te["wav"], te["pitch"].numpy())), f"{time.time()-t0:.0f}s", flush=True)
opt = torch.optim.Adam(sing.parameters(), lr=A["ft_lr"])
lf = parse(A["ft_loss"]); P = sing.pad; W = sing.wav_length
for step in range(A["ft_steps"]):
    idx = torch.randint(0, n, (A["bs"],))
    x = tr["wav"][idx]
    L = min(A["ft_crop"], W)
    s = int(np.random.randint(0, (W - L) // 256 + 1)) * 256
    frames = sing.sequence(tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx])
    out = sing.decoder.synthesize(frames.transpose(1, 2), P + s, P + s + L, num_frames=sing.num_frames)
    loss = (wf if step < A["ft_warm"] else lf)(out, x[:, s:s + L])
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 200 == 0: print(f"ft {step} {loss.item():.4f} {time.time()-t0:.0f}s", flush=True)
    if A["score_every"] and step and step % A["score_every"] == 0:
        print(f"FT@{step} test:", json.dumps(score(gen_test(), te["wav"], te["pitch"].numpy())), flush=True)
print("FT test:", json.dumps(score(gen_test(), te["wav"], te["pitch"].numpy())), f"{time.time()-t0:.0f}s", flush=True)
torch.save({"A": A, "sing": sing.state_dict()}, f"{OUT}/{A['tag']}.pt")
