"""Can the LSTM fit the frames of 8 train notes? Residual over within-note variance, per note.
Needs $PROBE_OUT/aeP.ae.pt from `pipe.py stage=ae warm=200 ae_loss=paper+wav ae_steps=1500 tag=aeP`."""
import sys; import os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *
m, data = load(os.environ.get("DATASET", "quickstart/dataset")); tr = data["train"]
ae = Autoencoder(dimension=64, channels=256); ae.load_state_dict(torch.load(os.path.join(os.environ.get("PROBE_OUT", "/tmp/sing-probe"), "aeP.ae.pt"))["ae"]); ae.eval()
idx = torch.arange(0, 8) * 50
with torch.no_grad(): emb = ae.encode(tr["wav"][idx])
within = (emb - emb.mean(2, keepdim=True)).square().mean(dim=(1, 2))
print("within-note var per note", within.numpy().round(7))
w = 1.0 / (emb.square().mean(dim=(1, 2)) + 1e-8)
for K, iters, rel, lr in ((0, 150, False, 3e-3), (16, 600, False, 3e-3), (16, 600, True, 3e-3), (0, 600, True, 3e-3)):
    torch.manual_seed(0)
    seq = SequenceGenerator(14, dimension=64, hidden_size=128, num_layers=1, num_frames=emb.shape[-1], phase_harmonics=K)
    opt = torch.optim.Adam(seq.parameters(), lr=lr); t0 = time.time()
    for it in range(iters):
        hidden = None
        for s in range(0, emb.shape[-1], 32):
            L = min(32, emb.shape[-1] - s)
            fr, hidden = seq(tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx], start=s, length=L, hidden=hidden, return_hidden=True)
            err = (fr - emb[..., s:s + L]).square().mean(dim=(1, 2))
            loss = (err * w).mean() if rel else err.mean()
            opt.zero_grad(); loss.backward(); opt.step(); hidden = tuple(h.detach() for h in hidden)
    with torch.no_grad(): full = (seq(tr["instrument"][idx], tr["pitch"][idx], tr["vel_idx"][idx]) - emb).square().mean(dim=(1, 2))
    print(f"K={K} iters={iters} rel={rel} lr={lr}: residual/within-note variance per note {(full / within).numpy().round(2)} ({time.time()-t0:.0f}s)", flush=True)
