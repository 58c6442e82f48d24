"""Controller election from an etcd lease and a transaction: the pure state machine. etcd has no ready
recipe for this that fences a deposed winner, so it is built from the two primitives:

- A broker holds a lease and campaigns with one transaction: if the controller key does not exist
  (create revision 0), put it bound to the lease; else read it. Winning makes the key's create revision the
  controller epoch: etcd gives every creation a new, larger revision, so epochs only grow.
- The key lives as long as the lease. Whoever holds it is controller; every metadata write compares the
  key's create revision with the writer's epoch, so etcd itself refuses a deposed controller's write.
- Locally, a controller counts itself deposed once its lease may have expired: `lease_deadline_ms` is the
  time a keep-alive was *sent* plus the TTL it got back, so the local view errs on the safe side.

The driver (election_driver.py) feeds it etcd's answers and the time; it does no I/O itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    NO_LEASE = "no_lease"  # needs a lease before it can campaign
    CANDIDATE = "candidate"  # holds a lease, campaigns next
    CONTROLLER = "controller"
    FOLLOWER = "follower"  # another broker is controller; waits for its key to go
    DEPOSED = "deposed"  # was controller, lost the lease or the key; stops acting, then starts over


@dataclass(frozen=True, slots=True)
class ElectionStatus:
    role: Role
    controller_id: int | None
    epoch: int | None


class ControllerElection:
    """The election of one broker. Pure; not thread-safe (one asyncio driver owns it)."""

    def __init__(self, broker_id: int) -> None:
        self.broker_id = broker_id
        self.role = Role.NO_LEASE
        self.lease_id: int | None = None
        self.lease_deadline_ms = 0
        self.controller_id: int | None = None
        self.epoch: int | None = None

    @property
    def status(self) -> ElectionStatus:
        return ElectionStatus(self.role, self.controller_id, self.epoch)

    def is_controller(self, now_ms: int) -> bool:
        """Whether to act as controller now; etcd's revision compare still guards every write."""
        return self.role is Role.CONTROLLER and now_ms < self.lease_deadline_ms

    def lease_granted(self, lease_id: int, ttl_ms: int, sent_ms: int) -> None:
        self.lease_id = lease_id
        self.lease_deadline_ms = sent_ms + ttl_ms
        self.role = Role.CANDIDATE

    def lease_kept_alive(self, ttl_ms: int, sent_ms: int) -> None:
        """A keep-alive answer: TTL <= 0 means etcd no longer knows the lease (expired or revoked)."""
        if self.lease_id is None:
            return
        if ttl_ms <= 0:
            self.lease_lost()
            return
        self.lease_deadline_ms = max(self.lease_deadline_ms, sent_ms + ttl_ms)

    def tick(self, now_ms: int) -> None:
        """Time passed: a lease whose deadline went by unrenewed (etcd unreachable) counts as lost."""
        if self.lease_id is not None and now_ms >= self.lease_deadline_ms:
            self.lease_lost()

    def lease_lost(self) -> None:
        self.lease_id = None
        self.lease_deadline_ms = 0
        self.role = Role.DEPOSED if self.role is Role.CONTROLLER else Role.NO_LEASE
        if self.role is Role.NO_LEASE:
            self.controller_id = None
            self.epoch = None

    def campaign_won(self, revision: int) -> None:
        self._expect(Role.CANDIDATE, "won a campaign")
        self.role = Role.CONTROLLER
        self.controller_id = self.broker_id
        self.epoch = revision

    def campaign_lost(self, holder_id: int, create_revision: int, holder_lease: int) -> None:
        """The key exists. Bound to our own lease, it is ours (an earlier campaign on this lease won, its
        answer lost); under another lease it is someone else's, even an earlier life of this broker."""
        self._expect(Role.CANDIDATE, "lost a campaign")
        if holder_lease == self.lease_id:
            self.role = Role.CONTROLLER
        else:
            self.role = Role.FOLLOWER
        self.controller_id = holder_id
        self.epoch = create_revision

    def controller_seen(self, holder_id: int | None, create_revision: int | None) -> None:
        """A fresh read or watch event of the controller key (None: the key is gone)."""
        if self.role is Role.CONTROLLER:
            if create_revision != self.epoch:
                self.role = Role.DEPOSED  # our key went (revoked, deleted) or was replaced
            return
        if self.role is Role.FOLLOWER:
            if create_revision is None:
                self.role = Role.CANDIDATE
                self.controller_id = None
                self.epoch = None
            else:
                self.controller_id = holder_id
                self.epoch = create_revision

    def start_over(self) -> None:
        """After DEPOSED: the driver has stopped every controller task; back to needing a lease."""
        self._expect(Role.DEPOSED, "started over")
        self.lease_id = None
        self.lease_deadline_ms = 0
        self.role = Role.NO_LEASE
        self.controller_id = None
        self.epoch = None

    def _expect(self, role: Role, what: str) -> None:
        if self.role is not role:
            raise RuntimeError(f"broker {self.broker_id} {what} while {self.role.value}")
