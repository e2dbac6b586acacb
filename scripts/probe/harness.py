"""Experiment harness for issue 11: train SING phases in one process and score held-out notes."""
import json, math, sys, time, os
import numpy as np, pyarrow.parquet as pq, torch, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from sing_ray.data.dataset import decode_audio
from sing_ray.models.autoencoder import Autoencoder
from sing_ray.models.sequence import SequenceGenerator
from sing_ray.models.sing import SING
from sing_ray import evaluate as ev
from sing_ray.losses import table1_metrics
from sing_ray.train.steps import velocity_indices

ev.PITCH_HOP_SECONDS = float(os.environ.get('PITCH_HOP', '0.048'))
FAST = int(os.environ.get('FAST_SAMPLES', '32000'))
torch.set_num_threads(int(os.environ.get("THREADS", "1")))

def load(dataset):
    m = json.load(open(f"{dataset}/manifest.json"))
    out = {}
    for s in m["shards"]:
        t = pq.read_table(f"{dataset}/{s['path']}")
        d = out.setdefault(s["split"], {"wav": [], "instrument": [], "pitch": [], "velocity": [], "note_str": [], "family": []})
        d["wav"].append(decode_audio(t.column("audio")))
        for k in ("instrument", "pitch", "velocity", "note_str"):
            d[k].append(t.column(k).to_numpy(zero_copy_only=False))
        d["family"].append(t.column("instrument_family_str").to_numpy(zero_copy_only=False))
    for sp, d in out.items():
        for k in d:
            d[k] = np.concatenate(d[k])
        d["wav"] = torch.from_numpy(d["wav"])
        for k in ("instrument", "pitch", "velocity"):
            d[k] = torch.from_numpy(d[k].astype(np.int64))
        d["vel_idx"] = velocity_indices(d["velocity"])
    return m, out

def rms_db(w):
    w = np.asarray(w, dtype=np.float64)
    return 20 * np.log10(np.sqrt(np.mean(w ** 2, axis=-1)) + 1e-12)

def score(gen, real, pitches, with_real_pitch=False):
    gen = gen.detach().float(); real = real.float()
    sl = table1_metrics(gen, real)["spectral_l1"].numpy()
    s0 = table1_metrics(torch.zeros_like(real), real)["spectral_l1"].numpy()
    f0 = np.array([ev.estimate_f0(w[:FAST], int(p)) for w, p in zip(gen.numpy(), pitches)])
    cents = np.asarray(ev.cents_off(f0, np.asarray(pitches)))
    intune = ev.in_tune(cents)
    dg, dr = rms_db(gen.numpy()), rms_db(real.numpy())
    out = dict(n=len(gen), in_tune=float(intune.mean()), med_cents=float(np.nanmedian(np.abs(cents))) if np.isfinite(cents).any() else None,
               loud_med_abs_db=float(np.median(np.abs(dg - dr))), loud_med_db=float(np.median(dg - dr)),
               spec_l1=float(sl.mean()), silence_l1=float(s0.mean()), ratio=float(sl.mean() / s0.mean()),
               near_silent=int((dg < -60).sum()), real_db=float(np.median(dr)))
    if with_real_pitch:
        f0r = np.array([ev.estimate_f0(w, int(p)) for w, p in zip(real.numpy(), pitches)])
        out["real_in_tune"] = float(ev.in_tune(np.asarray(ev.cents_off(f0r, np.asarray(pitches)))).mean())
    return out


def parse_args(defaults: dict) -> dict:
    """KEY=VALUE command-line arguments over ``defaults``, each cast to its default's type; printed."""
    args = dict(defaults)
    for a in sys.argv[1:]:
        k, v = a.split("=", 1)
        args[k] = type(args[k])(v)
    print(args, flush=True)
    return args
