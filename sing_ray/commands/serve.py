"""``sing-ray serve``: single notes over HTTP with Ray Serve."""
from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    from ..render import DTYPES

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Serve MODEL with Ray Serve: POST /synthesize {instrument, pitch, velocity, mix?, format?} returns "
        "audio/wav or audio/flac; GET /instruments; GET /healthz. Requests are batched; beyond "
        "--max-queued-requests waiting requests the server answers 503. Stops on Ctrl-C. See docs/render.md.")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a checkpoint file or an MLflow model URI (models:/sing/3, runs:/<id>/sing)")
    parser.add_argument("--host", default="127.0.0.1", help="address the HTTP proxy binds")
    parser.add_argument("--port", type=int, default=8000, help="port of the HTTP proxy")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="precision of the model's products")
    parser.add_argument("--gpu", action="store_true", help="one GPU per replica")
    parser.add_argument("--replicas", type=int, default=1, metavar="N", help="replicas, each with a model copy")
    parser.add_argument("--replica-cpus", type=float, default=None, metavar="N",
                        help="CPUs per replica (default: 1 with --gpu, else all of this machine's cores)")
    parser.add_argument("--max-batch-size", type=int, default=16, metavar="N", help="notes per model call")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, metavar="MS",
                        help="how long a batch waits to fill")
    parser.add_argument("--max-ongoing-requests", type=int, default=None, metavar="N",
                        help="requests a replica holds at once (default: twice --max-batch-size)")
    parser.add_argument("--max-queued-requests", type=int, default=64, metavar="N",
                        help="requests waiting for a replica beyond which the answer is 503")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")


def run(args: argparse.Namespace) -> int:
    """Check the model, start Serve, block until interrupted, shut Serve down; returns 0."""
    import logging
    import time

    import ray

    from ..checkpoint import load_checkpoint
    from ..errors import UserError
    from ..runtime import init_ray
    from ..tracking import resolve_model

    log = logging.getLogger("sing_ray.serve")
    # A bad model is reported here, not as a replica that fails to start over and over.
    ckpt = load_checkpoint(resolve_model(args.model, args.tracking_uri))
    if ckpt["class"] != "SING" or not ckpt.get("extra", {}).get("instruments"):
        raise UserError(f"{args.model}: need a SING checkpoint with an instrument vocabulary")
    del ckpt
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be 1-65535, got {args.port}")
    from ray import serve

    from ..serve import build_app

    app = build_app(args.model, tracking_uri=args.tracking_uri, dtype=args.dtype, use_gpu=args.gpu,
                    num_replicas=args.replicas, num_cpus=args.replica_cpus, max_batch_size=args.max_batch_size,
                    batch_wait_timeout_s=args.batch_wait_ms / 1000, max_ongoing_requests=args.max_ongoing_requests,
                    max_queued_requests=args.max_queued_requests)
    started = init_ray(num_cpus=args.num_cpus)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name="sing", route_prefix="/")
        print(f"serving {args.model} at http://{args.host}:{args.port}/synthesize (Ctrl-C stops)\n"
              f"play it in a browser: http://{args.host}:{args.port}/", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        serve.shutdown()
        if started:
            ray.shutdown()
    return 0
