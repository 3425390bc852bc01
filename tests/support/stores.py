"""Stores over both backends, for the store's contract tests: the ``store_at`` fixture.

``store_at`` is parameterised over SQLite and PostgreSQL; it gives a ``StoreFactory``:

- ``store_at()`` opens a ``Store`` on a fresh, empty database (a new file; a new PostgreSQL
  database of the test's own, from ``make_postgres_url``);
- ``store_at(target)`` opens another ``Store`` on the same database: several ``Store`` objects on
  one database stand for several replicas (SQLite's WAL lets several connections share a file);
- ``store_at.replicas(n)``: ``n`` Stores on one fresh database; ``store_at.target_of(store)``.

``sample_task(n)`` makes a task to store.

Every Store it opened is closed when the test ends (before its PostgreSQL database is dropped).
A PostgreSQL test never skips: without a server it fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portside.control.store import Store
from portside.core.task import Container, Task

BACKENDS = ("sqlite", "postgresql")
#: The container instance ``sample_task`` puts its tasks on.
INSTANCE = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/0123456789abcdef"


class StoreFactory:
    """Opens Stores on fresh databases of one backend (``dialect``), and closes them all at the end."""

    def __init__(self, dialect: str, fresh: Callable[[], str]) -> None:
        self.dialect = dialect
        self._fresh = fresh
        self._opened: list[Store] = []

    def fresh(self) -> str:
        """The target (``sqlite:PATH`` or a ``postgresql://`` URL) of a new, empty database."""
        return self._fresh()

    def __call__(self, target: str | None = None, *, writer: str | None = None) -> Store:
        """A Store on ``target`` (a fresh database when None), closed when the test ends."""
        store = Store(target or self.fresh(), writer=writer)
        self._opened.append(store)
        return store

    def replicas(self, count: int) -> list[Store]:
        """``count`` Stores on one fresh database, writers ``replica-0``, ``replica-1``, ..."""
        target = self.fresh()
        return [self(target, writer=f"replica-{i}") for i in range(count)]

    @staticmethod
    def target_of(store: Store) -> str:
        return store.url if store.url is not None else f"sqlite:{store.path}"

    def close(self) -> None:
        for store in self._opened:
            store.close()
        self._opened.clear()


def sqlite_targets(folder: Path) -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"sqlite:{folder / f'store-{next(numbers)}.db'}"


@pytest.fixture(params=BACKENDS)
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A ``StoreFactory`` for SQLite, then for PostgreSQL (see the module's docstring)."""
    if request.param == "sqlite":
        fresh = sqlite_targets(tmp_path)
    else:
        fresh = request.getfixturevalue("make_postgres_url")
    factory = StoreFactory(request.param, fresh)
    yield factory
    factory.close()


def sample_task(number: int) -> Task:
    """A task on ``INSTANCE``, told apart by ``number``."""
    arn = f"arn:aws:ecs:us-east-1:000000000000:task/default/{number:032x}"
    return Task(
        arn=arn,
        id=f"{number:032x}",
        region="us-east-1",
        cluster="default",
        cluster_arn="arn:aws:ecs:us-east-1:000000000000:cluster/default",
        task_definition_arn="arn:aws:ecs:us-east-1:000000000000:task-definition/web:1",
        family="web",
        revision=1,
        network_mode="bridge",
        container_instance_arn=INSTANCE,
        containers=[Container("web", f"{arn}/web", "busybox", "ecs-web")],
        cpu=0,
        memory=16,
        created_at=1000.0,
    )
