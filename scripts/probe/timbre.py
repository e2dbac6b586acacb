"""Timbre figures of a checkpoint on its held-out notes and 70 of its training notes, read
straight from the dataset's Parquet (no Ray): the quick comparison of training runs that
docs/quality.md section 18 made, beside the nearest-key sampler and silence:

    python scripts/probe/timbre.py CHECKPOINT [DATASET] [SAVE.npz]

Prints per split the median long-term spectrum distance (all bands, loud bands), envelope
distance, mean spectral L1, median |level difference| and near-silent count, the share of
notes closer than the nearest key, and the medians per family. The figures are
sing_ray.timbre's and sing_ray.evaluate's, on the same held-out notes as ``sing-ray evaluate``
(its training-note sample differs: 70 drawn with pandas' seed 0, not evaluate.keep_note).
"""
import sys, glob, numpy as np, pyarrow.parquet as pq, torch
torch.set_num_threads(1)
from sing_ray.evaluate import build_note_model, rms_dbfs
from sing_ray.losses import table1_metrics
from sing_ray.timbre import timbre_metrics, nearest_key_plan, shift_pitch
ck = open(sys.argv[1],'rb').read()
ds = sys.argv[2] if len(sys.argv)>2 else 'quickstart/dataset'
fn, info = build_note_model(ck)
t = pq.ParquetDataset(sorted(glob.glob(ds+'/notes/*.parquet'))).read().to_pandas()
train = t[t.split=='train']
key = {(r.instrument_str, int(r.pitch), int(r.velocity)): i for i, r in enumerate(train.itertuples())}
def pcm(a): return np.frombuffer(a, dtype=np.int16).astype(np.float32)/32768
for split in ['test','train']:
    s = t[t.split==split]
    if len(s) > 70: s = s.sample(70, random_state=0)
    real = np.stack([pcm(a) for a in s.audio])
    gen = np.concatenate([fn(s.instrument_str.values[i:i+16], s.pitch.values[i:i+16], s.velocity.values[i:i+16], real[i:i+16]) for i in range(0,len(s),16)])
    plan = nearest_key_plan(list(zip(s.instrument_str, s.pitch, s.velocity)), list(key))
    nk = np.stack([np.zeros(64000,np.float32) if p is None else shift_pitch(pcm(train.audio.values[key[p]]), int(q)-p[1], 64000) for p,q in zip(plan, s.pitch)])
    fam = s.instrument_family_str.values
    rows = {}
    for name, w in [('model', gen), ('nearest', nk), ('silence', np.zeros_like(real))]:
        m = timbre_metrics(w, real)
        sl = table1_metrics(torch.from_numpy(w), torch.from_numpy(real))['spectral_l1'].numpy()
        rows[name] = m
        lev = rms_dbfs(w)-rms_dbfs(real)
        print(f"{split:5s} {name:8s} lts {np.median(m['lts_db']):5.2f} loud {np.median(m['lts_loud_db']):5.2f} env {np.median(m['envelope_db']):5.2f} spec {sl.mean():.4f} |lev| {np.median(np.abs(lev)):.2f} lev {np.median(lev):+.2f} nearsilent {(rms_dbfs(w)<-60).sum()}")
    has = np.array([p is not None for p in plan])          # notes without a nearest key are left out
    closer = (rows['model']['lts_db'] < rows['nearest']['lts_db'])[has].mean()
    print(f"   closer than nearest on {closer:.0%}")
    print('   by family model/nearest:', {f: (round(float(np.median(rows['model']['lts_db'][fam==f])),1), round(float(np.median(rows['nearest']['lts_db'][fam==f])),1)) for f in sorted(set(fam))})
    if split == 'test' and len(sys.argv) > 3:
        np.savez(sys.argv[3], real=real, gen=gen, nk=nk, pitch=s.pitch.values, note=s.note_str.values)
