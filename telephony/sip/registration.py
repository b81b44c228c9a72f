"""REGISTER with refresh to a PBX or registrar (RFC 3261 §10.2): the asyncio side of one binding.

Theory of operation: ``Registration`` owns one task that sleeps until ``RegisterMachine.next_at``
(``register.py``: every decision is there) and then runs an *attempt*: a REGISTER through the
agent's client transactions (``UserAgent.start_client`` / ``final_response``, so timer E
retransmits and timer F ends it), its answer read by ``read_answer`` and fed to the machine, whose
``Step`` says what next: answer a 401/407 with ``DigestClient`` and send again, send again with
the interval a 423 asked for, or sleep until the refresh (or the backoff retry after a failure;
the machine never gives up). Every REGISTER of a binding carries the same Call-ID and From tag and
a CSeq one higher (§10.2.4); To and From are the address of record ``sip:USER@REGISTRAR-HOST``,
Contact is the agent's with ``;expires=`` (and the same value in ``Expires``). Once a challenge is
answered, later REGISTERs carry credentials for the same nonce with nc+1 (preemptive); a registrar
that rotates its nonce challenges again and is answered again.

``stop()`` cancels the task and, when the registrar may hold our binding, sends one REGISTER with
Expires 0 (answering one challenge), bounded by ``unregister_timeout``. ``changed`` is called
after every change of ``state``, ``expires_at`` (wall-clock seconds) or ``last_status``.
The password never reaches a log line, a repr or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Self

from telephony.errors import DigestError
from telephony.sip.agent import UserAgent
from telephony.sip.dialog import SipUri
from telephony.sip.digest import Credentials, DigestClient
from telephony.sip.endpoint import ALLOW, new_tag
from telephony.sip.headers import CSeq, Headers
from telephony.sip.message import Request, Response
from telephony.sip.register import (
    DEFAULT_BACKOFF,
    DEFAULT_REFRESH,
    BackoffPolicy,
    RefreshPolicy,
    RegisterMachine,
    RegState,
    Step,
    read_answer,
)

__all__ = ["RegState", "Registration"]

log = logging.getLogger(__name__)

MAX_SENDS = 8  # REGISTERs in one attempt (challenges and 423s bound it lower; this is a backstop)


class Registration:
    """``async with Registration(agent, "sip:pbx.example:5060", "cityhub", credentials=…)``."""

    def __init__(
        self,
        agent: UserAgent,
        registrar: str,
        user: str,
        *,
        credentials: Credentials | None = None,
        expires: int = 600,
        refresh: RefreshPolicy = DEFAULT_REFRESH,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        random: Callable[[], float] = _random.random,
        changed: Callable[[Registration], None] | None = None,
        unregister_timeout: float = 5.0,
    ) -> None:
        target = SipUri.parse(registrar)
        self.agent = agent
        self.registrar = registrar
        host = f"[{target.host.strip('[]')}]" if ":" in target.host else target.host
        self.aor = f"{target.scheme}:{user}@{host}"
        self.machine = RegisterMachine(expires, random=random, refresh=refresh, backoff=backoff)
        self.changed = changed
        self.unregister_timeout = unregister_timeout
        self._digest = DigestClient(credentials) if credentials is not None else None
        self._call_id = ""
        self._tag = new_tag()
        self._cseq = 0
        self._task: asyncio.Task[None] | None = None
        self.expires_at: float | None = None  # wall clock (time.time()) when the binding lapses
        self._seen: tuple[object, ...] = ()

    def __repr__(self) -> str:
        return f"Registration({self.aor!r} at {self.registrar!r}, {self.state.value})"

    @property
    def state(self) -> RegState:
        return self.machine.state

    @property
    def last_status(self) -> int | None:
        """The status of the last final answer (None: none came, or none yet)."""
        return self.machine.last_status

    @property
    def failures(self) -> int:
        return self.machine.failures

    # ---- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Register now and keep the binding refreshed (the agent must be started)."""
        if self._task is not None:
            return
        self._call_id = self.agent.new_call_id()
        self.machine.start(self.agent.now())
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sip-register")

    async def stop(self) -> None:
        """Stop refreshing and remove the binding (Expires 0) if the registrar may hold it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self.machine.stop(self.agent.now()):
            try:
                async with asyncio.timeout(self.unregister_timeout):
                    await self._attempt()
            except TimeoutError:
                self.machine.failed(self.agent.now())
            except OSError as e:
                log.warning("unregistering %s: %s", self.aor, e)
                self.machine.failed(self.agent.now())
        self._notify()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- the attempt loop ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:  # never gives up: each pass sleeps until the machine's next_at, then attempts
            due = self.machine.next_at
            if due is None:
                return
            delay = due - self.agent.now()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._attempt()
            except OSError as e:  # the registrar's name does not resolve, the socket refused
                log.warning("REGISTER %s to %s: %s", self.aor, self.registrar, e)
                self.machine.failed(self.agent.now())
                self._notify()
            except Exception:  # a bug must not end the registration: log it and back off
                log.exception("REGISTER %s to %s failed", self.aor, self.registrar)
                self.machine.failed(self.agent.now())
                self._notify()

    async def _attempt(self) -> None:
        m = self.machine
        destination = await self.agent.resolve(self.registrar)
        for _ in range(MAX_SENDS):
            expires = m.sending(self.agent.now())
            self._notify()
            request = self._request(expires)
            _, queue = self.agent.start_client(request, destination)
            response = await self.agent.final_response(queue)
            answer = read_answer(response, self.agent.contact, requested=expires)
            step = m.received(answer, self.agent.now())
            if step is Step.AUTHENTICATE:
                assert response is not None
                if self._challenged(response):
                    continue
                step = m.failed(self.agent.now())
            elif step is Step.SEND:
                log.info("REGISTER %s: 423, asking for %d s", self.aor, m.expires)
                continue
            self._report(answer.status, expires)
            self._notify()
            return
        m.failed(self.agent.now())  # only a registrar answering 401 and 423 alternately gets here
        self._notify()

    def _challenged(self, response: Response) -> bool:
        """Take the 401/407's challenge; False if there is nothing to answer it with."""
        if self._digest is None:
            log.warning("REGISTER %s: %d and no credentials configured", self.aor, response.status)
            return False
        proxy = response.status == 407
        try:
            self._digest.challenged(
                response.header_all("Proxy-Authenticate" if proxy else "WWW-Authenticate"),
                proxy=proxy,
                retried=self.machine.retried,
            )
        except DigestError as e:
            why = "credentials refused" if e.rejected else "unusable challenge"
            log.warning("REGISTER %s: %d, %s", self.aor, response.status, why)
            return False
        return True

    def _request(self, expires: int) -> Request:
        self._cseq += 1
        auth = self._digest.authorizations("REGISTER", self.registrar) if self._digest else []
        pairs = [
            ("Via", self.agent.new_via()),
            ("Max-Forwards", "70"),
            ("From", f"<{self.aor}>;tag={self._tag}"),
            ("To", f"<{self.aor}>"),
            ("Call-ID", self._call_id),
            ("CSeq", str(CSeq(self._cseq, "REGISTER"))),
            ("Contact", f"<{self.agent.contact}>;expires={expires}"),
            ("Expires", str(expires)),
            ("Allow", ", ".join(ALLOW)),
            ("User-Agent", "cityhub"),
            *auth,
        ]
        return Request("REGISTER", self.registrar, Headers.of(pairs))

    # ---- reporting -------------------------------------------------------------------------

    def _report(self, status: int | None, expires: int) -> None:
        m = self.machine
        if m.state is RegState.REGISTERED:
            log.info("registered %s at %s for %s s", self.aor, self.registrar, m.granted)
        elif m.state is RegState.FAILED:
            wait = (m.next_at or 0.0) - self.agent.now()
            what = "no answer" if status is None else f"{status}"
            log.warning("REGISTER %s failed (%s), retrying in %.1f s", self.aor, what, wait)
        elif expires == 0:
            log.info("unregistered %s at %s (%s)", self.aor, self.registrar, status)

    def summary(self, tz: tzinfo | None = None) -> str:
        """One line for a health check: "registered to sip:pbx:5060 until 14:05" and the like."""
        where = f"to {self.registrar}"
        if self.state is RegState.REGISTERED and self.expires_at is not None:
            until = datetime.fromtimestamp(self.expires_at, tz).strftime("%H:%M")
            return f"registered {where} until {until}"
        if self.state is RegState.FAILED:
            what = "no answer" if self.last_status is None else str(self.last_status)
            return f"registration {where} failed ({what}, {self.failures}x), retrying"
        return f"registration {where}: {self.state.value}"

    def _notify(self) -> None:
        m = self.machine
        seen = (m.state, m.expires_at, m.last_status)
        if seen == self._seen:
            return
        if m.expires_at is None:
            self.expires_at = None
        elif self._seen[1:2] != (m.expires_at,):  # a new grant: its lapse on the wall clock
            self.expires_at = time.time() + (m.expires_at - self.agent.now())
        self._seen = seen
        if self.changed is not None:
            try:
                self.changed(self)
            except Exception:
                log.exception("registration changed callback failed")
