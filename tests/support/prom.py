"""Real Prometheus, Alertmanager, promtool and amtool for tests, on 127.0.0.1 free ports.

Flags and timings chosen for tests: 1s rule evaluation,
`--rules.alert.resend-delay=1s` (the 1m default makes alert tests wait a minute after a drop
before Alertmanager discovery), long TSDB retention (the 15d default deletes backfilled blocks),
gossip off for Alertmanager, explicit external URLs. Servers are stopped by PID and awaited.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import yaml

from tests.support.binaries import (
    free_port,
    http_get,
    require_binary,
    stop_process,
    wait_http_ok,
)

T = TypeVar("T")

_START_ATTEMPTS = 3  # a free_port() race loses the bind; retry on a new port
_BLOCK_SECONDS = 2 * 3600  # promtool's default (and in 2.42 fixed) block range


# --------------------------------------------------------------------------- promtool / amtool


def _run(args: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def promtool_check_rules(path: Path | str) -> subprocess.CompletedProcess[str]:
    """Run `promtool check rules PATH`; the caller asserts on returncode/stdout/stderr."""
    return _run([require_binary("promtool"), "check", "rules", str(path)])


def promtool_check_config(path: Path | str) -> subprocess.CompletedProcess[str]:
    """Run `promtool check config PATH` (also checks the rule files it references)."""
    return _run([require_binary("promtool"), "check", "config", str(path)])


def promtool_test_rules(path: Path | str) -> subprocess.CompletedProcess[str]:
    """Run `promtool test rules PATH` (a unit-test file whose rule_files are relative to it)."""
    return _run([require_binary("promtool"), "test", "rules", str(path)], timeout=600.0)


def amtool_check_config(path: Path | str) -> subprocess.CompletedProcess[str]:
    """Run `amtool check-config PATH`."""
    return _run([require_binary("amtool"), "check-config", str(path)])


def amtool_routes_test(
    config_path: Path | str,
    labels: Mapping[str, str],
    expect_receivers: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `amtool config routes test` for one label set.

    stdout holds the resolved receivers, comma separated. With `expect_receivers`, amtool
    exits 1 when the resolved receivers differ (`--verify.receivers`), else 0.
    """
    args = [require_binary("amtool"), "config", "routes", "test", f"--config.file={config_path}"]
    if expect_receivers is not None:
        args.append("--verify.receivers=" + ",".join(expect_receivers))
    args += [f"{name}={value}" for name, value in labels.items()]
    return _run(args)


# --------------------------------------------------------------------------- HTTP helpers


class PromAPIError(RuntimeError):
    """The Prometheus HTTP API answered with status "error" or a non-2xx code."""


def _get_json(url: str, timeout: float = 30.0) -> Any:
    status, body = http_get(url, timeout=timeout)
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise PromAPIError(f"GET {url}: HTTP {status}, not JSON: {body[:300]!r}") from err
    if status >= 300 or (isinstance(doc, dict) and doc.get("status") == "error"):
        raise PromAPIError(f"GET {url}: HTTP {status}: {body[:500]!r}")
    return doc


def _post(url: str, data: bytes = b"", content_type: str = "application/json", timeout: float = 30.0) -> bytes:
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as err:
        raise PromAPIError(f"POST {url}: HTTP {err.code}: {err.read()[:500]!r}") from err


def _poll(predicate: Callable[[], T | None], timeout: float, interval: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class _Server:
    """A child process serving HTTP on 127.0.0.1:port, started with retries, stopped by PID."""

    name = "server"
    ready_path = "/-/ready"

    def __init__(self, tmp_dir: Path | str) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.tmp_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its readiness endpoint answers 200."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} already running (pid {self.proc.pid})")
        for attempt in range(_START_ATTEMPTS):
            t0 = time.monotonic()
            with self.log_path.open("ab") as log:
                offset = log.tell()
                self.proc = subprocess.Popen(
                    self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                wait_http_ok(self.url + self.ready_path, timeout, proc=self.proc, log_path=self.log_path)
            except RuntimeError:
                stop_process(self.proc)
                this_run = self.log_path.read_bytes()[offset:]
                if attempt + 1 < _START_ATTEMPTS and b"address already in use" in this_run:
                    self.port = free_port()
                    self._on_port_change()
                    continue
                raise
            except BaseException:  # timeout, Ctrl-C: never leave the process behind
                stop_process(self.proc)
                raise
            self.startup_seconds = time.monotonic() - t0
            return

    def _on_port_change(self) -> None:
        """Hook: rewrite files that embed the port."""

    def stop(self) -> None:
        """Terminate by PID (SIGTERM) and wait for exit; idempotent."""
        if self.proc is not None:
            stop_process(self.proc)

    @property
    def pid(self) -> int | None:
        """PID of the running process, or None."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- Prometheus


class Prometheus(_Server):
    """A real Prometheus server; config, rules dir and TSDB live under `tmp_dir`.

    The config loads `rule_files` plus every `*.yml`/`*.yaml` in `rules_dir` (see
    `write_rule_file`), scrapes itself, and sends alerts to `alertmanager_url` if given.
    """

    name = "prometheus"

    def __init__(
        self,
        tmp_dir: Path | str,
        rule_files: Sequence[Path | str] = (),
        alertmanager_url: str | None = None,
        evaluation_interval: str = "1s",
        scrape_interval: str = "1s",
        retention: str = "400d",
        extra_args: Sequence[str] = (),
        remote_write_receiver: bool = False,
        data_dir: Path | str | None = None,
        extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(tmp_dir)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.alertmanager_url = alertmanager_url
        self.evaluation_interval = evaluation_interval
        self.scrape_interval = scrape_interval
        self.retention = retention
        self.extra_args = list(extra_args)
        self.remote_write_receiver = remote_write_receiver
        self.data_dir = Path(data_dir) if data_dir is not None else self.tmp_dir / "data"
        self.extra_scrape_configs = [dict(c) for c in extra_scrape_configs]
        self.rules_dir = self.tmp_dir / "rules.d"
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.tmp_dir / "prometheus.yml"
        self._write_config()

    def config(self) -> dict[str, Any]:
        """The prometheus.yml document this instance runs with."""
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files]
            + [str(self.rules_dir / "*.yml"), str(self.rules_dir / "*.yaml")],
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]},
                *self.extra_scrape_configs,
            ],
        }
        if self.alertmanager_url:
            parsed = urllib.parse.urlsplit(self.alertmanager_url)
            am: dict[str, Any] = {
                "scheme": parsed.scheme or "http",
                "static_configs": [{"targets": [parsed.netloc]}],
            }
            if parsed.path.strip("/"):
                am["path_prefix"] = parsed.path
            cfg["alerting"] = {"alertmanagers": [am]}
        return cfg

    def _write_config(self) -> None:
        _atomic_write(self.config_path, yaml.safe_dump(self.config(), sort_keys=False))

    def _on_port_change(self) -> None:
        self._write_config()

    def _command(self) -> list[str]:
        args = [
            require_binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--rules.alert.resend-delay=1s",
        ]
        if self.remote_write_receiver:
            args.append("--web.enable-remote-write-receiver")  # 2.42 name; the feature flag is deprecated
        return args + self.extra_args

    # -- lifecycle ---------------------------------------------------------

    def reload(self) -> None:
        """POST /-/reload; raise PromAPIError if Prometheus rejects the config or a rule file.

        Measured on 2.42: a reload empties the notifier's Alertmanager list until the next
        discovery sync (up to 5 s); alerts firing in that gap are dropped and resent 1 s after
        (`--rules.alert.resend-delay=1s`). Call `wait_alertmanager_discovered` after a reload
        when the order matters.
        """
        _post(self.url + "/-/reload")

    def write_rule_file(self, name: str, text: str, *, reload: bool = False) -> Path:
        """Atomically write `rules_dir/name` (must end in .yml/.yaml); reload if asked. Return the path."""
        if not name.endswith((".yml", ".yaml")) or "/" in name:
            raise ValueError(f"rule file name must be a plain *.yml/*.yaml name, got {name!r}")
        path = self.rules_dir / name
        _atomic_write(path, text)
        if reload:
            self.reload()
        return path

    # -- API ---------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> with query params; return the `data` member."""
        query = urllib.parse.urlencode(params)
        doc = _get_json(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        return doc["data"]

    def query(self, expr: str, time: float | None = None) -> list[Any]:
        """Instant query; return `data.result` (a vector: [{metric, value: [ts, "v"]}, ...])."""
        params = {"query": expr}
        if time is not None:
            params["time"] = repr(float(time))
        result: list[Any] = self.api("query", **params)["result"]
        return result

    def query_value(self, expr: str, time: float | None = None) -> float | None:
        """Instant query expected to return at most one sample; its value as float, or None if empty."""
        result = self.query(expr, time)
        if not result:
            return None
        if isinstance(result[0], dict):
            if len(result) != 1:
                raise PromAPIError(f"{expr!r} returned {len(result)} series, expected one")
            return float(result[0]["value"][1])
        return float(result[1])  # scalar: [ts, "v"]

    def query_range(self, expr: str, start: float, end: float, step: float | str) -> list[Any]:
        """Range query; return `data.result` (a matrix: [{metric, values: [[ts, "v"], ...]}, ...])."""
        result: list[Any] = self.api(
            "query_range", query=expr, start=repr(float(start)), end=repr(float(end)), step=str(step)
        )["result"]
        return result

    def rules(self) -> dict[str, Any]:
        """GET /api/v1/rules `data` ({"groups": [...]}, each rule with health, lastError, evaluationTime)."""
        data: dict[str, Any] = self.api("rules")
        return data

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v1/alerts `data.alerts` (pending and firing alerts)."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def alertmanagers(self) -> dict[str, Any]:
        """GET /api/v1/alertmanagers `data` ({activeAlertmanagers, droppedAlertmanagers})."""
        data: dict[str, Any] = self.api("alertmanagers")
        return data

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
        """Call `predicate()` until it returns a truthy value and return it; TimeoutError otherwise."""
        return _poll(predicate, timeout, interval, f"Prometheus {self.url}")

    def wait_rules_loaded(self, group_names: Iterable[str], timeout: float = 15.0) -> dict[str, Any]:
        """Wait until every named rule group is loaded and evaluated once; return /api/v1/rules data."""
        wanted = set(group_names)

        def ready() -> dict[str, Any] | None:
            data = self.rules()
            # lastEvaluation is Go's zero time ("0001-01-01T...") until the first evaluation
            seen = {g["name"] for g in data["groups"] if not g.get("lastEvaluation", "0001-").startswith("0001-")}
            return data if wanted <= seen else None

        return self.wait_for(ready, timeout)


def wait_alertmanager_discovered(
    prom: Prometheus, timeout: float = 15.0, alertmanager_url: str | None = None
) -> list[dict[str, Any]]:
    """Poll /api/v1/alertmanagers until an active Alertmanager (optionally `alertmanager_url`) is listed.

    Returns the active list. Discovery takes 0.25-5 s after a (re)start: alerts sent before
    it are dropped, so wait for this before asserting on webhooks.
    """
    prefix = alertmanager_url.rstrip("/") if alertmanager_url else None

    def found() -> list[dict[str, Any]] | None:
        active: list[dict[str, Any]] = prom.alertmanagers()["activeAlertmanagers"]
        if prefix is None:
            return active or None
        return active if any(a["url"].startswith(prefix) for a in active) else None

    return _poll(found, timeout, 0.1, "Alertmanager discovery")


# --------------------------------------------------------------------------- backfill


Sample = tuple[float, float]
"""(unix seconds, value)"""
Series = tuple[Mapping[str, str], Iterable[Sample]]
"""(labels without __name__, samples in increasing time order)"""


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill produced."""

    files: list[Path]
    samples: int
    write_seconds: float
    promtool_seconds: float


def counter_samples(
    start: float, end: float, step: float, rate: Callable[[float], float], initial: float = 0.0
) -> list[Sample]:
    """Counter samples every `step` s over [start, end], increasing by `rate(t) * step` per step.

    `rate(t)` is the per-second increase during the step that ends at `t`; the first sample
    (at `start`) has value `initial`.
    """
    samples: list[Sample] = []
    value = initial
    n = math.floor((end - start) / step + 1e-9)
    for i in range(n + 1):
        t = start + i * step
        if i:
            value += rate(t) * step
        samples.append((t, value))
    return samples


def _om_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))  # full precision; "{:g}" would round counters to 6 digits


def _om_ts(ts: float) -> str:
    return str(int(ts)) if float(ts).is_integer() else repr(float(ts))


def _om_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    parts = []
    for name, value in sorted(labels.items()):
        escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{name}="{escaped}"')
    return "{" + ",".join(parts) + "}"


def _type_line(metric: str) -> str:
    if metric.endswith("_total") and len(metric) > len("_total"):
        return f"# TYPE {metric[: -len('_total')]} counter\n"
    return f"# TYPE {metric} unknown\n"


# Cost model for promtool 2.42 (measured here): each run costs ~0.05 s to start, and it
# re-parses its whole input once per 2h block (~0.6 us per sample per pass). A file covering
# k windows of s samples each costs ~0.05 + k*k*s*0.6e-6 s; per window that is minimal at
# k = sqrt(0.05 / (s * 0.6e-6)). 2 series x 30d at 5m: one file per 2h window 12.9 s, one
# file for all 7.2 s, 48 windows per file 3.3 s.
_PROMTOOL_RUN_SECONDS = 0.05
_PROMTOOL_SAMPLE_PASS_SECONDS = 0.6e-6
_MAX_WINDOWS_PER_FILE = 84  # a week


def _auto_windows_per_file(families: Mapping[str, Sequence[Series]]) -> int:
    total = 0
    lo, hi = math.inf, -math.inf
    for series_list in families.values():
        for _labels, samples in series_list:
            if not isinstance(samples, Sequence):
                return 1  # a one-shot iterable: cannot look ahead, stay safe for big inputs
            if samples:
                total += len(samples)
                lo, hi = min(lo, samples[0][0]), max(hi, samples[-1][0])
    if total == 0:
        return 1
    windows = max(1, math.floor(hi / _BLOCK_SECONDS) - math.floor(lo / _BLOCK_SECONDS) + 1)
    per_window = total / windows
    k = round(math.sqrt(_PROMTOOL_RUN_SECONDS / (per_window * _PROMTOOL_SAMPLE_PASS_SECONDS)))
    return max(1, min(_MAX_WINDOWS_PER_FILE, k))


def write_openmetrics_blocks(
    out_dir: Path | str,
    families: Mapping[str, Sequence[Series]],
    *,
    windows_per_file: int | None = None,
    flush_lines: int = 50_000,
) -> tuple[list[Path], int]:
    """Write OpenMetrics files into `out_dir`, each covering 2h-aligned windows; return (files, samples).

    `families` maps a metric name (e.g. "http_requests_total": typed counter, other names
    "unknown") to its series. Each file covers `windows_per_file` consecutive 2h windows
    (None: chosen from the sample density, see the cost model above; 1 for one-shot iterables),
    keeps families contiguous and ends with `# EOF`. Files are named by their first second.
    """
    k = windows_per_file if windows_per_file is not None else _auto_windows_per_file(families)
    if k < 1:
        raise ValueError("windows_per_file must be >= 1")
    span = k * _BLOCK_SECONDS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buffers: dict[int, list[str]] = {}
    started: set[int] = set()  # file indexes whose file exists
    headed: set[tuple[int, str]] = set()
    count = 0

    def path_of(index: int) -> Path:
        return out / f"{index * span}.om"

    def flush(index: int) -> None:
        lines = buffers.pop(index, [])
        if not lines:
            return
        mode = "a" if index in started else "w"
        started.add(index)
        with path_of(index).open(mode) as fh:
            fh.writelines(lines)

    for metric, series_list in families.items():
        for labels, samples in series_list:
            if "__name__" in labels:
                raise ValueError("labels must not contain __name__; it is the families key")
            prefix = metric + _om_labels(labels) + " "
            last_ts: float | None = None
            for ts, value in samples:
                if last_ts is not None and ts <= last_ts:
                    raise ValueError(f"{prefix.strip()}: timestamps must increase ({ts} after {last_ts})")
                last_ts = ts
                index = int(ts // span)
                buf = buffers.setdefault(index, [])
                if (index, metric) not in headed:
                    headed.add((index, metric))
                    buf.append(_type_line(metric))
                buf.append(f"{prefix}{_om_float(value)} {_om_ts(ts)}\n")
                count += 1
                if len(buf) >= flush_lines:
                    flush(index)
        # a family must be contiguous per file: flush everything before the next family
        for index in list(buffers):
            flush(index)
    files = [path_of(i) for i in sorted(started)]
    for path in files:
        with path.open("a") as fh:
            fh.write("# EOF\n")
    return files, count


def backfill_openmetrics(data_dir: Path | str, files: Iterable[Path | str], *, parallel: int = 2) -> float:
    """Run `promtool tsdb create-blocks-from openmetrics` on each file into `data_dir`; return seconds.

    Split big inputs on 2h boundaries (promtool 2.42 re-reads the whole input once per block;
    `write_openmetrics_blocks` does the split). Prometheus must not be running on `data_dir`;
    start it afterwards with a retention long enough to keep the blocks. Raises RuntimeError
    with promtool's output on failure.
    """
    promtool = require_binary("promtool")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def one(path: Path | str) -> subprocess.CompletedProcess[str]:
        return _run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(path), str(data_dir)],
            timeout=1800.0,
        )

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(one, list(files)))
    failed = [r for r in results if r.returncode != 0]
    if failed:
        first = failed[0]
        raise RuntimeError(
            f"{len(failed)} promtool backfill run(s) failed; first: {first.args!r} rc={first.returncode}\n"
            f"{first.stdout}{first.stderr}"
        )
    return time.monotonic() - t0


def backfill_counters(
    data_dir: Path | str,
    families: Mapping[str, Sequence[Series]],
    *,
    work_dir: Path | str | None = None,
    parallel: int = 2,
    windows_per_file: int | None = None,
) -> BackfillResult:
    """Backfill `families` (metric name → [(labels, [(ts_seconds, value), ...]), ...]) into `data_dir`.

    Writes OpenMetrics files split on 2h block boundaries (into `work_dir`, or a temp dir
    removed afterwards) and runs promtool on them, `parallel` at a time. Values keep full
    float precision. `windows_per_file`: see `write_openmetrics_blocks`.
    """
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="obsctl-om-") as tmp:
        out = Path(work_dir) if work_dir is not None else Path(tmp)
        files, samples = write_openmetrics_blocks(out, families, windows_per_file=windows_per_file)
        write_seconds = time.monotonic() - t0
        promtool_seconds = backfill_openmetrics(data_dir, files, parallel=parallel)
    return BackfillResult(files=files, samples=samples, write_seconds=write_seconds, promtool_seconds=promtool_seconds)


# --------------------------------------------------------------------------- Alertmanager


class Alertmanager(_Server):
    """A real Alertmanager (gossip off) configured with `config_text`; state lives under `tmp_dir`."""

    name = "alertmanager"

    def __init__(self, tmp_dir: Path | str, config_text: str) -> None:
        super().__init__(tmp_dir)
        self.config_path = self.tmp_dir / "alertmanager.yml"
        self.storage_dir = self.tmp_dir / "am-data"
        _atomic_write(self.config_path, config_text)

    def _command(self) -> list[str]:
        return [
            require_binary("prometheus-alertmanager"),
            f"--config.file={self.config_path}",
            f"--storage.path={self.storage_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # empty: no gossip (else it binds 0.0.0.0:9094)
            f"--web.external-url={self.url}",
        ]

    def reload(self, config_text: str | None = None) -> None:
        """Optionally rewrite the config, then POST /-/reload (PromAPIError if rejected)."""
        if config_text is not None:
            _atomic_write(self.config_path, config_text)
        _post(self.url + "/-/reload")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (each with labels, status.state, status.inhibitedBy, receivers)."""
        query = urllib.parse.urlencode(filters)
        alerts: list[dict[str, Any]] = _get_json(f"{self.url}/api/v2/alerts" + (f"?{query}" if query else ""))
        return alerts

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts directly (bypassing Prometheus)."""
        _post(f"{self.url}/api/v2/alerts", json.dumps(list(alerts)).encode())

    def status(self) -> dict[str, Any]:
        """GET /api/v2/status (config.original holds the loaded config text)."""
        status: dict[str, Any] = _get_json(f"{self.url}/api/v2/status")
        return status

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
        """Call `predicate()` until it returns a truthy value and return it; TimeoutError otherwise."""
        return _poll(predicate, timeout, interval, f"Alertmanager {self.url}")


# --------------------------------------------------------------------------- webhook receiver


class WebhookReceiver:
    """In-process HTTP server on 127.0.0.1 recording every POST as {path, payload, recv_unix}.

    Set `status_code` to make it answer something else than 200 (e.g. 500 to exercise retries).
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status_code = 200
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload: Any = json.loads(body) if body else None
                except ValueError:
                    payload = body.decode(errors="replace")
                with receiver._cond:
                    receiver.received.append({"path": self.path, "payload": payload, "recv_unix": time.time()})
                    receiver._cond.notify_all()
                self.send_response(receiver.status_code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT; POST to any path under it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, join the thread and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of `received` taken under the lock."""
        with self._cond:
            return list(self.received)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Return the first received request (already or later) for which `predicate(item)` is true."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for item in self.received[checked:]:
                    if predicate(item):
                        return item
                checked = len(self.received)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching webhook within {timeout}s; received {len(self.received)}")
                self._cond.wait(remaining)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
