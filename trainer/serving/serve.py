"""The model server: a base model and its run adapters behind an OpenAI-compatible HTTP API.

Run ``python -m trainer.serving.serve --base-model M [--adapter run-3=FOLDER ...]``, or
``python -m trainer.serving.serve --db PATH --project NAME [--run ID ... | --base-only]`` to serve a
project's base model with its completed runs (all of them unless some are named) and its system
prompt. The model ``base`` answers with adapters disabled, ``run-<id>`` with that run's adapter.

This is the process: it parses its arguments, binds its port, loads the models and serves
``trainer.serving.app`` with uvicorn. Once listening it prints ``READY http://HOST:PORT`` on
stdout; status lines go to stderr as ``status: ...``, and a startup failure as ``error: ...``
with exit code 2. The bearer token comes from ``$TUNESMITH_API_KEY`` (or ``--api-key``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
import uvicorn

from store.database import open_database
from store.errors import ModelError, NotFoundError
from store.projects import get_project
from trainer.control.launch import (
    API_KEY_ENV,
    BASE_MODEL_NAME,
    READY_PREFIX,
    STATUS_PREFIX,
    is_loopback,
    run_model_name,
    served_runs,
)
from trainer.control.process import child_main
from trainer.models import load_base_model
from trainer.serving.app import ChatService, build_app
from trainer.serving.inference import ModelPool
from trainer.serving.json_schema import task_object

STARTUP_FAILURE_EXIT_CODE = 2

GRACEFUL_SHUTDOWN_SECONDS = 5
"""How long answers in flight may go on once the server is asked to stop."""

THREAD_PROBE_SECONDS = 1.0
"""Longest the generation speed of one thread count is measured at startup."""

THREAD_PROBE_STEPS = 8
"""Tokens generated to measure one thread count."""


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints the READY line once it accepts connections."""

    def __init__(self, config: uvicorn.Config, base_url: str) -> None:
        super().__init__(config)
        self._base_url = base_url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"{READY_PREFIX}{self._base_url}", flush=True)


def _listen_socket(host: str, port: int) -> tuple[socket.socket, str]:
    """A socket bound (not yet listening) to host and port, and the base URL it will serve."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
    except OSError as error:
        listener.close()
        raise ModelError(f"Cannot listen on {host}:{port}: {error.strerror}") from error
    shown = f"[{address}]" if ":" in address else address
    return listener, f"http://{shown}:{listener.getsockname()[1]}"


def _load(args: argparse.Namespace) -> ChatService:
    """Load the base model and attach the adapters the arguments name."""
    system_prompt, task_shape = None, None
    if args.project is not None:
        if not args.db.is_file():
            raise NotFoundError(f"{args.db}: database not found")
        db = open_database(args.db)
        project = get_project(db, args.project)
        run_ids = [] if args.base_only else (args.run or None)
        adapters = {
            run_model_name(run.id): Path(str(run.adapter_path))
            for run in served_runs(db, project, run_ids)
        }
        base_model, system_prompt = project.base_model, project.system_prompt
        fields = spec_json_fields(project.task_spec)
        task_shape = task_object(fields) if fields else None
    else:
        base_model, adapters = args.base_model, dict(args.adapter)
    model, tokenizer = load_base_model(
        base_model, trust_remote_code=args.trust_remote_code, on_status=_print_status
    )
    if tokenizer.chat_template is None:
        raise ModelError(f"Base model {base_model} has no chat template to chat with.")
    # Module.to() is mistyped by the transformers decorators; the call is the plain torch one.
    movable: Any = model
    movable.to("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        choose_threads(model)
    pool = ModelPool(model, tokenizer)
    for name, folder in adapters.items():
        _print_status(f"Attaching the adapter {name}...")
        pool.attach(name, folder)
    return ChatService(pool, system_prompt, task_shape)


def spec_json_fields(task_spec: dict[str, Any]) -> list[str]:
    """The fields a JSON task's answer holds (``output.json_fields`` when ``output.kind`` is
    ``json``); empty for other tasks."""
    output = task_spec.get("output")
    if not isinstance(output, dict) or output.get("kind") != "json":
        return []
    fields = output.get("json_fields")
    return [name for name in fields if isinstance(name, str)] if isinstance(fields, list) else []


def choose_threads(model: Any) -> int:
    """Set and return the CPU thread count that generates fastest, measured on the model.

    Generating one token is many small steps that every thread must finish: on a busy
    machine a thread that waits for its core holds up the rest, and a small model can then
    answer many times faster on one thread than on all of them. More threads win ties (10%).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    seconds_per_token = {}
    for threads in sorted({1, max(1, cores // 2), cores}):
        torch.set_num_threads(threads)
        seconds_per_token[threads] = _decode_seconds(model)
    fastest = min(seconds_per_token.values())
    best = max(t for t, seconds in seconds_per_token.items() if seconds <= 1.1 * fastest)
    torch.set_num_threads(best)
    return best


def _decode_seconds(model: Any) -> float:
    """Seconds per generated token, over at most THREAD_PROBE_SECONDS."""
    prompt = torch.ones((1, 16), dtype=torch.long, device=model.device)
    with torch.inference_mode():
        cache = model(prompt, use_cache=True).past_key_values
        token = prompt[:, -1:]
        # The first step wakes the threads up; it is not counted.
        cache = model(token, past_key_values=cache, use_cache=True).past_key_values
        steps = 0
        start = time.perf_counter()
        while steps < THREAD_PROBE_STEPS and time.perf_counter() - start < THREAD_PROBE_SECONDS:
            cache = model(token, past_key_values=cache, use_cache=True).past_key_values
            steps += 1
    return (time.perf_counter() - start) / steps


def _print_status(message: str) -> None:
    print(f"{STATUS_PREFIX}{message}", file=sys.stderr, flush=True)


def _stop_when_stdin_closes(server: uvicorn.Server) -> None:
    """Ask the server to stop once stdin reaches end of file (the launching process is gone)."""
    while sys.stdin.buffer.read(65536):
        pass
    server.should_exit = True


def _adapter_argument(value: str) -> tuple[str, Path]:
    name, separator, folder = value.partition("=")
    if not separator or not name or not folder:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=FOLDER")
    if name == BASE_MODEL_NAME:
        raise argparse.ArgumentTypeError(f"{BASE_MODEL_NAME!r} names the base model already")
    return name, Path(folder)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.serving.serve",
        description="Serve a base model and LoRA adapters over an OpenAI-compatible HTTP API.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--base-model", help="Embedded name, folder or hub id.")
    source.add_argument("--project", help="Serve this project's base model and completed runs.")
    parser.add_argument(
        "--adapter",
        action="append",
        type=_adapter_argument,
        default=[],
        metavar="NAME=FOLDER",
        help="With --base-model: answer as NAME with the adapter in FOLDER (repeatable).",
    )
    parser.add_argument("--db", type=Path, help="With --project: the database file.")
    parser.add_argument(
        "--run",
        action="append",
        type=int,
        metavar="ID",
        help="With --project: attach this completed run only (repeatable; default: all).",
    )
    parser.add_argument(
        "--base-only", action="store_true", help="With --project: attach no run at all."
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument(
        "--api-key", default=None, help=f"Bearer token (better: set ${API_KEY_ENV}, unseen by ps)."
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Allow the model's own Python code to run (only for models you trust).",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="Stop when stdin closes, so the server dies with the process that started it.",
    )
    args = parser.parse_args(argv)
    if args.project is not None and args.db is None:
        parser.error("--project needs --db")
    if args.project is None and (args.db or args.run or args.base_only):
        parser.error("--db, --run and --base-only go with --project")
    if args.project is not None and args.adapter:
        parser.error("--adapter goes with --base-model")
    if len({name for name, _ in args.adapter}) != len(args.adapter):
        parser.error("each --adapter needs its own NAME")
    return args


def main(argv: list[str] | None = None) -> int:
    """Load the models, listen, print the READY line and serve until stopped."""
    args = _parse_args(argv)
    return child_main(lambda: _serve(args), failure_status=STARTUP_FAILURE_EXIT_CODE)


def _serve(args: argparse.Namespace) -> None:
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if api_key is None and not is_loopback(args.host):
        raise ModelError(
            f"Refusing to listen on {args.host} without an API key; "
            f"set {API_KEY_ENV} or pass --api-key, or listen on 127.0.0.1."
        )
    # Bound before the slow model load, so a taken port fails at once.
    listener, base_url = _listen_socket(args.host, args.port)
    service = _load(args)
    config = uvicorn.Config(
        build_app(service, api_key=api_key),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _AnnouncingServer(config, base_url)
    if args.exit_on_stdin_eof:
        threading.Thread(
            target=_stop_when_stdin_closes, args=(server,), name="stdin-watch", daemon=True
        ).start()
    # uvicorn shuts down gracefully on Ctrl-C, then raises it again for its caller.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])


if __name__ == "__main__":
    sys.exit(main())
