"""Share-link budgets under real concurrency, through gunicorn (the Procfile's web command,
several workers and threads): ten clients at once on a 3-download link get exactly three
files and seven 410s (the link records three downloads, and three are audited); and wrong
passwords sent all at once from one address spend the link's 10-a-minute guess budget
exactly, however many are checked at the same time."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from devstack.process import ServiceProcess
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session
from portcullis.links.models import ShareLink
from tests.support.factories import make_bucket, make_file, make_file_link, make_member, make_tenant
from tests.support.web import settings_env, start_web

pytestmark = pytest.mark.usefixtures("stack")

CLIENTS = 10
BUDGET = 3
GUESSERS = 16
GUESSES_PER_MINUTE = 10


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process: ServiceProcess
    process, port = start_web(tmp_path_factory.mktemp("budget") / "web.log",
                              {"WEB_CONCURRENCY": "2", "WEB_THREADS": "8"})
    yield port
    process.stop()


def test_ten_at_once_on_a_three_download_link(web: int) -> None:
    admin = make_member(make_tenant("Budget Race Co"))
    data = b"raced bytes " * 4096
    link = make_file_link(make_file(admin, make_bucket(admin), data), max_downloads=BUDGET)
    url = f"http://127.0.0.1:{web}{link.path}"
    start = threading.Barrier(CLIENTS)
    answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def fetch() -> None:
        with httpx.Client(timeout=60) as client:
            client.get(f"http://127.0.0.1:{web}/healthz")  # connected before the race
            start.wait()
            response = client.get(url)
        with lock:
            answers.append((response.status_code, response.content))

    threads = [threading.Thread(target=fetch) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: BUDGET, 410: CLIENTS - BUDGET}, statuses
    assert all(body == data for status, body in answers if status == 200)
    assert all(b"link_used_up" in body for status, body in answers if status == 410)
    with system_session() as db:
        assert db.scalar(select(ShareLink.downloads).where(ShareLink.id == link.id)) == BUDGET
        audited = db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "link.downloaded", AuditEvent.target_id == str(link.id)))
    assert audited == BUDGET


def test_parallel_wrong_passwords_spend_the_guess_budget_exactly(web: int) -> None:
    """Counted before the slow hash: were a guess only counted once its check failed, every
    guess in flight during one bcrypt check would pass (a slower cost widens that window,
    so the link's hash here costs 2^10, not the suite's 2^4)."""
    admin = make_member(make_tenant("Guess Race Co"))
    stored = make_file(admin, make_bucket(admin), b"guarded")
    with settings_env(BCRYPT_ROUNDS="10"):
        link = make_file_link(stored, password="correct horse battery")
    url = f"http://127.0.0.1:{web}{link.path}"
    start = threading.Barrier(GUESSERS)
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(n: int) -> None:
        with httpx.Client(timeout=60) as client:
            client.get(f"http://127.0.0.1:{web}/healthz")
            start.wait()
            response = client.get(url, auth=("anyone", f"wrong guess number {n}"))
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(GUESSERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert Counter(statuses) == {401: GUESSES_PER_MINUTE, 429: GUESSERS - GUESSES_PER_MINUTE}
    with httpx.Client(timeout=60) as client:  # the budget is spent: the right one waits too
        refused = client.get(url, auth=("anyone", "correct horse battery"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
