"""The benchmark's SMTP load generator — the same code drives Dispatch, Postfix and the bare
sink, so the comparison is fair. Sessions stay open (STARTTLS + AUTH once) and send many
messages each, as a submitting application would."""
import asyncio
import ssl
import time
import uuid

import aiosmtplib

BODY_LINE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"


def make_message(bench_id, *, sender, recipient, size=2048):
    headers = (
        f"From: Bench <{sender}>\r\nTo: <{recipient}>\r\nSubject: bench {bench_id}\r\n"
        f"Message-ID: <{bench_id}@bench.localhost>\r\nX-Bench-Id: {bench_id}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    body_len = max(size - len(headers), 0)
    body = (BODY_LINE * (body_len // len(BODY_LINE) + 1))[:body_len]
    body = body[: body.rfind("\r\n") + 2] if "\r\n" in body else body
    return (headers + body).encode()


async def smtp_load(*, host, port, total, sessions=20, username=None, password=None, tls="starttls",
                    sender, recipient_for, size=2048, run_id=None, timeout=60):
    """Send `total` messages over `sessions` concurrent sessions. Returns a result dict with
    the accepted bench ids (only those that got a 250)."""
    run_id = run_id or uuid.uuid4().hex[:8]
    counter = iter(range(total))
    accepted, errors = [], []
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    async def session(number):
        client = aiosmtplib.SMTP(hostname=host, port=port, use_tls=(tls == "implicit"), start_tls=False,
                                 tls_context=context, timeout=timeout)
        await client.connect()
        if tls == "starttls":
            await client.starttls(tls_context=context)
        if username:
            await client.login(username, password)
        for index in counter:
            bench_id = f"{run_id}-{index}"
            recipient = recipient_for(index)
            try:
                await client.sendmail(sender, [recipient], make_message(bench_id, sender=sender, recipient=recipient, size=size))
                accepted.append(bench_id)
            except aiosmtplib.SMTPException as exc:
                errors.append(f"{bench_id}: {exc}")
                if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                    await client.connect()
                    if tls == "starttls":
                        await client.starttls(tls_context=context)
                    if username:
                        await client.login(username, password)
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            pass

    started = time.perf_counter()
    await asyncio.gather(*(session(n) for n in range(sessions)))
    seconds = time.perf_counter() - started
    return {"run_id": run_id, "accepted": accepted, "errors": errors, "seconds": seconds,
            "rate": len(accepted) / seconds if seconds else 0.0}
