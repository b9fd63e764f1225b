"""The operator's reads across every key: usage aggregates and the task list of the admin API.

Aggregates run in the database (one grouped query, on the ``created_at`` index), so a month of
tasks is summed where it lies rather than shipped to Python row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
)

from imagegate.db.database import Database
from imagegate.db.tables import ApiKey, Task, utcnow
from imagegate.db.tasks import month_spend, month_start
from imagegate.domain import GatewayError, TaskStatus

GroupBy = Literal["key", "model", "day"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str  # the key id, the model id or the day (YYYY-MM-DD, UTC)
    key_name: str | None  # when grouped by key
    tasks: int
    succeeded: int
    errors: int  # failed tasks
    images: int  # images delivered
    cost_micros: int  # settled spend


@dataclass(frozen=True, slots=True)
class TaskFilter:
    key_id: str | None = None
    model: str | None = None
    statuses: Sequence[str] | None = None
    start: datetime | None = None
    end: datetime | None = None  # exclusive


class AdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _day(self) -> ColumnElement[str]:
        if self.db.is_postgres:
            return func.to_char(func.timezone("UTC", Task.created_at), "YYYY-MM-DD")
        return func.substr(Task.created_at, 1, 10)  # SQLite keeps UTC text: 'YYYY-MM-DD HH:MM:SS...'

    def _images(self) -> ColumnElement[int]:
        """How many images a succeeded task delivered: the length of its result's ``images``."""
        if self.db.is_postgres:
            count: ColumnElement[Any] = func.json_array_length(Task.result.op("->")(literal_column("'images'")))
        else:
            count = func.json_array_length(Task.result, "$.images")
        return case((Task.status == TaskStatus.succeeded.value, func.coalesce(cast(count, Integer), 0)), else_=0)

    async def usage(
        self, start: datetime, end: datetime, group_by: GroupBy, key_id: str | None = None
    ) -> list[UsageRow]:
        """Tasks created in [start, end) (by one key, or every key), grouped; the spend is what succeeded
        tasks settled."""
        conds = [Task.created_at >= start, Task.created_at < end]
        if key_id is not None:
            conds.append(Task.key_id == key_id)
        group: SQLColumnExpression[Any] = {"key": Task.key_id, "model": Task.model, "day": self._day()}[group_by]
        done = TaskStatus.succeeded.value
        q: Select[Any, int, Any, Any, Any, Any] = (
            select(
                group.label("g"),
                func.count(),
                func.sum(case((Task.status == done, 1), else_=0)),
                func.sum(case((Task.status == TaskStatus.failed.value, 1), else_=0)),
                func.sum(self._images()),
                func.sum(case((Task.status == done, Task.cost_micros), else_=0)),
            )
            .where(*conds)
            .group_by(group)
            .order_by(group)
        )
        async with self.db.session() as s:
            rows = (await s.execute(q)).all()
            names: dict[str, str] = {}
            if group_by == "key" and rows:
                kq = select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_([r[0] for r in rows]))
                names = {k: n for k, n in (await s.execute(kq)).all()}
        return [
            UsageRow(str(g), names.get(str(g)) if group_by == "key" else None, int(n), int(ok or 0), int(bad or 0),
                     int(img or 0), int(cost or 0))
            for g, n, ok, bad, img, cost in rows
        ]  # fmt: skip

    async def tasks(self, f: TaskFilter, *, limit: int, after: str | None) -> tuple[list[Task], bool]:
        """A page of every key's tasks, newest first, and whether more follow."""
        conds: list[ColumnElement[bool]] = []
        if f.key_id is not None:
            conds.append(Task.key_id == f.key_id)
        if f.model is not None:
            conds.append(Task.model == f.model)
        if f.statuses:
            conds.append(Task.status.in_(f.statuses))
        if f.start is not None:
            conds.append(Task.created_at >= f.start)
        if f.end is not None:
            conds.append(Task.created_at < f.end)
        async with self.db.session() as s:
            if after:
                anchor = (await s.execute(select(Task.seq, Task.id).where(Task.id == after))).one_or_none()
                if anchor is None:
                    raise GatewayError.bad(
                        "after", f"'after' must be a task id from a previous page; no task '{after}'"
                    )
                conds.append(or_(Task.seq < anchor.seq, and_(Task.seq == anchor.seq, Task.id < anchor.id)))
            q = select(Task).where(*conds).order_by(Task.seq.desc(), Task.id.desc()).limit(limit + 1)
            rows = list((await s.execute(q)).scalars())
        return rows[:limit], len(rows) > limit

    async def month_spend(self, key_ids: Sequence[str]) -> dict[str, int]:
        """Each key's spend this calendar month (UTC), as its budget counts it (settled plus held)."""
        if not key_ids:
            return {}
        q = (
            select(Task.key_id, month_spend())
            .where(Task.key_id.in_(key_ids), Task.created_at >= month_start(utcnow()))
            .group_by(Task.key_id)
        )
        async with self.db.session() as s:
            return {k: int(v) for k, v in (await s.execute(q)).all()}

    async def key_names(self, key_ids: Sequence[str]) -> dict[str, str]:
        if not key_ids:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(set(key_ids))))).all()
        return {k: n for k, n in rows}
