"""Running imagegate processes and their heartbeats: who may take over whose tasks.

Every process registers itself and heartbeats; a task records the process that runs it. A task
is taken over only when its owner is gone: stopped cleanly, silent for longer than the stale
limit, or (on the same host) a pid that no longer runs, which lets a restarted single process
recover its own work at once instead of waiting out the limit.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update

from imagegate.db.database import Database, new_id
from imagegate.db.tables import Process, Task, utcnow


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessStore:
    def __init__(self, db: Database, stale_after: float) -> None:
        self.db = db
        self.stale_after = stale_after

    async def register(self, role: str) -> str:
        now = utcnow()
        row = Process(
            id=new_id("proc"), role=role, host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now
        )
        async with self.db.session.begin() as s:
            s.add(row)
        await self._bury_dead_pids()
        return row.id

    async def heartbeat(self, process_id: str) -> None:
        async with self.db.session.begin() as s:
            stmt = update(Process).where(Process.id == process_id).values(heartbeat_at=utcnow())
            await s.execute(stmt)

    async def stop(self, process_id: str) -> None:
        async with self.db.session.begin() as s:
            await s.execute(update(Process).where(Process.id == process_id).values(stopped_at=utcnow()))

    async def _bury_dead_pids(self) -> None:
        """Mark stopped the processes of this host whose pid no longer runs (a kill -9, a crash)."""
        async with self.db.session() as s:
            q = select(Process.id, Process.pid).where(
                Process.host == socket.gethostname(), Process.stopped_at.is_(None)
            )
            rows = (await s.execute(q)).all()
        dead = [r.id for r in rows if r.pid != os.getpid() and not _pid_running(r.pid)]
        if dead:
            async with self.db.session.begin() as s:
                await s.execute(update(Process).where(Process.id.in_(dead)).values(stopped_at=utcnow()))

    def cutoff(self) -> datetime:
        return utcnow() - timedelta(seconds=self.stale_after)

    def takeable(self, me: str) -> ColumnElement[bool]:
        """A condition on a task: its owner is no process that still runs (and is not ``me``)."""
        alive = select(Process.id).where(Process.heartbeat_at > self.cutoff(), Process.stopped_at.is_(None))
        return or_(Task.owner.is_(None), and_(Task.owner.not_in(alive), Task.owner != me))
