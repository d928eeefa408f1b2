"""Two processes fetch the same version into the same node cache at the same moment.

Both must get the exact bytes and the same view folder, the cache must be left with no
partial files, and the bytes must be downloaded once in all. The S3 case counts the GET
requests on the server side: a moto server of its own (a separate process) with moto's
request recorder switched on after the publish, so only fetches are recorded. The two
processes together must make exactly the requests that one process alone makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from models_support import Site, assert_cache_sound, local_site, s3_site, sha256, write_files

from dataplane.testing.servers import create_s3_bucket, free_port

CHILD = Path(__file__).with_name("models_child.py")
TREE = {
    "weights.bin": os.urandom(20 * 2**20 + 12345),  # three 8 MiB chunks
    **{f"shards/part-{i}.bin": os.urandom(2**20 + i) for i in range(5)},
    "config.json": b'{"layers": 12}',
    "empty": b"",
}


class RecordingMotoServer:
    """``moto_server`` in its own process, recording requests to a file once started."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.recording = folder / "requests.jsonl"
        script = Path(sys.executable).with_name("moto_server")
        env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(self.recording)}
        env.pop("MOTO_ENABLE_RECORDING", None)
        self.log = open(folder / "moto.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)], cwd=folder, env=env,
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.recording.parent / "moto.log").read_text()
            try:
                self._call("/moto-api/recorder/reset-recording")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def _call(self, path: str) -> None:
        request = urllib.request.Request(self.endpoint_url + path, method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def reset_recording(self) -> None:
        self._call("/moto-api/recorder/reset-recording")

    def start_recording(self) -> None:
        self._call("/moto-api/recorder/start-recording")

    def stop_recording(self) -> None:
        self._call("/moto-api/recorder/stop-recording")

    def gets(self) -> Counter[str]:
        """How many GET requests each object URL path received while recording."""
        counts: Counter[str] = Counter()
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            path = entry["url"].split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
            if entry["method"] == "GET" and "/objects/" in path:
                counts[path] += 1
        return counts

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def recording_s3(tmp_path: Path) -> Iterator[RecordingMotoServer]:
    folder = tmp_path / "moto"
    folder.mkdir()
    server = RecordingMotoServer(folder)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def fetch_at_once(site: Site, ref: str, folder: Path, processes: int = 2) -> list[dict]:
    """Start ``processes`` children, let them connect, then let them all fetch at once."""
    go = folder / "go"
    children = [subprocess.Popen([sys.executable, str(CHILD), "fetch", site.config_json(),
                                  ref, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(processes)]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "ready", child.stderr.read() if child.stderr else line
        go.touch()
        results = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def check_results(site: Site, results: list[dict]) -> None:
    expected = {path: sha256(data)[7:] for path, data in TREE.items()}
    assert [r["files"] for r in results] == [expected] * len(results)
    assert len({r["view"] for r in results}) == 1
    with site.plane() as plane:
        assert_cache_sound(plane)  # partial/ empty, every blob whole
        assert sorted(p.name for p in (plane.cache.root / "blobs").iterdir()) == sorted(
            set(expected.values()))


def test_two_processes_fetch_one_version_from_s3_and_download_it_once(
        recording_s3: RecordingMotoServer, tmp_path: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, key="testing", secret="testing",
                           endpoint_url=recording_s3.endpoint_url)
    bucket = create_s3_bucket(recording_s3.endpoint_url)
    site = s3_site(tmp_path / "site", recording_s3.endpoint_url, bucket, fs)
    with site.plane() as plane:
        version = plane.models.publish("bert", write_files(tmp_path / "src", TREE))

    # what one process alone asks for: a fetch into a cache of its own, recorded
    solo = Site(site.backend, {**site.config, "cache": {"dir": str(tmp_path / "solo-cache")}},
                site.root, fs)
    recording_s3.start_recording()
    with solo.plane() as plane:
        plane.models.fetch("bert@1")
    recording_s3.stop_recording()
    alone = recording_s3.gets()
    assert set(alone) == {f"{bucket}/prefix/{entry.key}" for entry in version.manifest.files}

    recording_s3.reset_recording()
    recording_s3.start_recording()
    results = fetch_at_once(site, "bert@1", tmp_path)
    recording_s3.stop_recording()

    check_results(site, results)
    together = recording_s3.gets()
    assert together == alone, (together, alone)  # two processes, one download in all


def test_two_processes_fetch_one_version_from_local_disk(tmp_path: Path) -> None:
    site = local_site(tmp_path / "site")
    with site.plane() as plane:
        plane.models.publish("bert", write_files(tmp_path / "src", TREE))
    results = fetch_at_once(site, "bert", tmp_path, processes=3)
    check_results(site, results)
