"""C2PA results in words a reader understands, and the level each one argues for.

The validation codes are the C2PA specification's; the sentences are ours, in one table
(``server.wording.CODES``, shared with the desk and the PDF: every code c2pa-rs can emit -> kind, a
category for the reader, plain words; docs/provenance.md). A
data-hash mismatch whose exclusion misses where the manifest sits is the writing software's structural
defect, not a pixel change, and is worded so (c2pa_read.data_binding tells the two apart). A failure that only
concerns the signer's certificate (expired, no trusted time-stamp) is worded apart from a
failure that shows the content or the credentials were changed, because readers act on them
differently: one says "we cannot vouch for who signed", the other "this was altered".

Time-stamps are worded by what c2pa-python 0.38 (c2pa-rs 0.91) actually does with them: a stamp
from an authority on the trust lists moves the certificate check to the stamped time (an expired
certificate then still validates, and we say it was signed while valid); a stamp from any other
authority is only information, the check happens at reading time, and we say the stamp was not
relied on. Content changes are named by what the file holds: pixels, a drawing, sound, video.

The library's Trusted or Valid is not the last word on the signer: it lets a certificate meant
only for time-stamping (or OCSP) sign content. c2pa_signer reads the certificate and judges it by
the C2PA profile; one it refuses is worded like the library's own signingCredential.invalid
(broken credentials), and one we could not read is never shown as verified.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from server.verdicts import Evidence, Level
from server.vocabulary import Kind, Stage
from server.wording import CERTIFICATE_EXPIRED, CERTIFICATE_PURPOSE, STRUCTURAL_DEFECT, category, validation_words
from worker.stages.c2pa_read import C2paResult, Ingredient, Manifest, SignerInfo
from worker.stages.c2pa_signer import SignerProblem, content_signing_ekus, judge

STAGE = Stage.C2PA

# A data-hash mismatch whose exclusion does not cover where the manifest sits: the writer's defect.
STRUCTURE_WORDS = ("the file's structure does not match its credentials (often a defect of the software that "
                   "wrote them); the pixels may be unchanged")
# Codes that speak about the signer, not about changes to content or credentials.
_SIGNER_ONLY = frozenset({"signingCredential.untrusted", "signingCredential.expired"})
# Which failure to lead with when there are several: content changes first.
_LEAD = ("assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
         "claimSignature.mismatch", "assertion.hashedURI.mismatch")


def _signed_by(signer: SignerInfo | None) -> str:
    if signer is None:
        return "an unknown signer"
    org, cn = signer.organisation, signer.common_name
    if org and cn and cn != org:
        return f"{org} ({cn})"
    return org or cn or "an unnamed signer"


def _when(iso: str | None) -> str:
    """An ISO time from the library as a reader reads it: 2026-12-01 16:54:55 UTC."""
    moment = _parse(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else (iso or "an unknown time")


def _parse(iso: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


def _stamp(signer: SignerInfo | None, now: dt.datetime) -> str:
    """The sentence about the signature's time-stamp, worded by whether the library relied on it."""
    if signer is None or not signer.timestamped:
        return ""
    by = f" by {signer.timestamp_authority}" if signer.timestamp_authority else ""
    when = _when(signer.signing_time)
    if signer.timestamp_trusted is False:
        return (f" The signature carries a time-stamp of {when}{by}, an authority not on your time-stamp "
                "trust list, so that time is not relied on.")
    if signer.timestamp_trusted is None:
        return f" The signature carries a time-stamp of {when}{by}, which was not checked against a trust list."
    expired = _parse(signer.not_after)
    if expired is not None and expired < now:
        return (f" Signed {when}, time-stamped{by}: the signing certificate has since expired "
                f"(valid until {_when(signer.not_after)}), but the trusted time-stamp shows the file was signed "
                "while it was valid.")
    return f" Signed {when}, time-stamped{by} (a trusted time-stamp authority)."


def _expired(who: str, signer: SignerInfo | None, now: dt.datetime) -> str:
    """Why a certificate outside its validity is not tampering, and what the time-stamp says."""
    start = _parse(signer.not_before) if signer else None
    span = (f" (valid {_when(signer.not_before)} to {_when(signer.not_after)})"
            if signer and signer.not_before and signer.not_after else "")
    if signer is not None and signer.timestamped and signer.timestamp_trusted:
        by = f" from {signer.timestamp_authority}" if signer.timestamp_authority else ""
        moment = _parse(signer.signing_time)
        side = ("before the signing certificate became valid" if moment and start and moment < start
                else "after the signing certificate had expired")
        return (f"Signed by {who}, but a trusted time-stamp{by} shows the file was signed on "
                f"{_when(signer.signing_time)}, {side}{span}. Signatures made outside a certificate's "
                "validity cannot be relied on; the content itself matches its signature.")
    state = "is not valid yet" if start and start > now else "had expired"
    if signer is not None and signer.timestamped:
        by = f" from {signer.timestamp_authority}" if signer.timestamp_authority else ""
        why = (f"its time-stamp{by} is not from an authority on your time-stamp trust list, so nothing "
               "trusted shows the file was signed while the certificate was valid")
    else:
        why = "no trusted time-stamp shows the file was signed while it was valid"
    return (f"Signed by {who}, but the signing certificate {state}{span} and {why}. The content itself "
            "matches its signature: this is not a sign of tampering.")


def _content_ekus(trust: dict[str, Any]) -> frozenset[str]:
    """The EKUs a content signer may carry: from the trust in force, else the configured default."""
    if isinstance(trust.get("content_signer_ekus"), list):
        return content_signing_ekus(str(e) for e in trust["content_signer_ekus"])
    from server.config import Settings

    return content_signing_ekus(str(Settings.model_fields["trust_ekus"].default).split(","))


def _signer_problem(signer: SignerInfo | None, allowed: frozenset[str]) -> SignerProblem | None:
    """Our own check of the signing certificate, which the library's does not fully cover."""
    if signer is None or signer.certificate is None:
        why = (signer.certificate_error if signer else None) or "no active manifest"
        return SignerProblem("unreadable", f"the signing certificate could not be read to check it is meant for "
                                           f"signing content ({why})")
    return judge(signer.certificate, allowed)


def _refusal(problem: SignerProblem) -> dict[str, Any]:
    """Our own refusal of a signing certificate, worded as the library's signingCredential.invalid."""
    return {"code": "signingCredential.invalid", "words": problem.words, "by": "credence",
            "category": CERTIFICATE_PURPOSE if problem.reason == "purpose" else STRUCTURAL_DEFECT}


def _ingredient_dict(node: Ingredient, thumbs: dict[str, Any],
                     refused: Callable[[str | None], SignerProblem | None]) -> dict[str, Any]:
    """One node of the ingredient tree; ``refused`` says why a manifest's signer may not sign content."""
    out: dict[str, Any] = {
        "title": node.title, "relationship": node.relationship, "format": node.format,
        "validation": node.validation, "manifest": node.manifest,
    }
    failures = [{"code": c, "words": validation_words(c, node.format), "category": category(c)}
                for c in dict.fromkeys(node.failures)]
    problem = refused(node.manifest) if node.validation in ("valid", "untrusted") else None
    if problem is not None:
        out["validation"] = "invalid"
        failures.append(_refusal(problem))
    if failures:
        out["failures"] = failures
    if node.thumbnail and node.thumbnail in thumbs:
        out["thumbnail"] = thumbs[node.thumbnail]
    if node.ingredients:
        out["ingredients"] = [_ingredient_dict(child, thumbs, refused) for child in node.ingredients]
    return out


def _failures(result: C2paResult) -> list[dict[str, Any]]:
    """One entry per code: the library reports a code once per manifest it concerns (an untrusted signer of
    both the file and its parent comes twice), and a reader needs it once; ``urls`` keeps where each was."""
    out: dict[str, dict[str, Any]] = {}
    for f in result.failures:
        item = out.setdefault(f.code, {"code": f.code, "words": validation_words(f.code, result.mime, f.explanation),
                                       "category": category(f.code), "urls": []})
        if f.url and f.url not in item["urls"]:
            item["urls"].append(f.url)
    return list(out.values())


def _manifest_details(m: Manifest, thumbs: dict[str, Any]) -> dict[str, Any]:
    signer = asdict(m.signer)
    stamp = None
    if m.signer.timestamped:
        stamp = {"time": m.signer.signing_time, "authority": m.signer.timestamp_authority,
                 "trusted": m.signer.timestamp_trusted}
    return {
        "manifest": m.label,
        "title": m.title,
        "claim_generator": m.claim_generator,
        "signer": signer,
        # Only a trusted stamp proves when the file was signed; any stamp is kept under "timestamp".
        "signing_time": m.signer.signing_time if m.signer.timestamp_trusted else None,
        "timestamped": m.signer.timestamped,
        "timestamp": stamp,
        "actions": [{k: v for k, v in asdict(a).items() if v is not None} for a in m.actions],
        **({"thumbnail": thumbs[m.thumbnail]} if m.thumbnail and m.thumbnail in thumbs else {}),
    }


def evidence(result: C2paResult, *, thumbs: dict[str, Any] | None = None,
             trust: dict[str, Any] | None = None, remote_refused: str | None = None,
             now: dt.datetime | None = None) -> list[Evidence]:
    """The provenance findings of one file.

    ``thumbs`` maps thumbnail identifiers to their stored reference (bytes never enter a verdict);
    ``remote_refused`` is why a remote manifest could not be fetched when fetching is enabled;
    ``now`` is when "has since expired" is judged (the reading time by default).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    thumbs = thumbs or {}
    trust = trust or {}
    if result.status == "absent":
        return [Evidence(stage=STAGE, kind=Kind.C2PA_ABSENT, summary="No Content Credentials (C2PA) in this file.")]
    if result.status == "remote":
        where = f" at {result.remote_url}" if result.remote_url else ""
        why = f"could not be fetched ({remote_refused})" if remote_refused else "was not fetched"
        return [Evidence(
            stage=STAGE, kind=Kind.C2PA_REMOTE_MANIFEST, supports=Level.UNAVAILABLE,
            summary=f"Could not check: the file's Content Credentials are stored remotely{where}; "
                    f"the remote manifest {why}.",
            details={"remote_url": result.remote_url, "fetched": False, "refused": remote_refused},
        )]
    if result.status == "unsupported":
        return [Evidence(stage=STAGE, kind=Kind.C2PA_UNSUPPORTED,
                         summary="Content Credentials cannot be read from this file type.",
                         details={"error": result.error})]
    if result.status == "unreadable" and (result.error or "").startswith("not read: "):
        return [Evidence(  # refused before the library read it (worker.stages.budget): the reason, not "broken"
            stage=STAGE, kind=Kind.C2PA_UNREADABLE, supports=Level.UNAVAILABLE,
            summary=f"Could not check the Content Credentials: {result.error.removeprefix('not read: ')}.",
            details={"error": result.error, "reason": "over-budget"},
        )]
    if result.status == "unreadable":
        return [Evidence(
            stage=STAGE, kind=Kind.C2PA_UNREADABLE, supports=Level.UNAVAILABLE,
            summary="Could not check the Content Credentials: the file is broken or truncated.",
            details={"error": result.error},
        )]
    if result.status == "damaged":
        return [Evidence(
            stage=STAGE, kind=Kind.C2PA_DAMAGED, supports=Level.TAMPERED,
            summary="Content Credentials broken: the credentials in this file are damaged or were altered, "
                    "so nothing they say can be relied on.",
            details={"error": result.error},
        )]

    active = result.active
    allowed = _content_ekus(trust)

    def signer_refused(label: str | None) -> SignerProblem | None:
        """An ingredient manifest whose certificate we read and the profile refuses (unread ones stay as they are)."""
        manifest = result.manifests.get(label) if label else None
        cert = manifest.signer.certificate if manifest else None
        return judge(cert, allowed) if cert is not None else None

    details: dict[str, Any] = _manifest_details(active, thumbs) if active else {}
    details.update({
        "state": result.state,
        "embedded": result.embedded,
        "manifests": len(result.manifests),
        "ingredients": [_ingredient_dict(n, thumbs, signer_refused) for n in result.ingredients],
        "failures": _failures(result),
        "trust": trust,
    })
    if result.remote_url:
        details["remote_url"] = result.remote_url  # fetched through the guarded fetcher
    signer = active.signer if active else None
    who = _signed_by(signer)
    codes = [f.code for f in result.failures]
    stamp = _stamp(signer, now)

    if result.state in ("Trusted", "Valid"):
        problem = _signer_problem(signer, allowed)
        details["content_signer"] = None if problem and problem.reason == "unreadable" else problem is None
        if problem is not None and problem.reason != "unreadable":
            # The C2PA certificate profile makes this signingCredential.invalid, which the library reports
            # for other EKUs it does not allow (and we word as broken credentials): the same here.
            details["failures"].append(_refusal(problem))
            details["category"] = details["failures"][-1]["category"]
            return [Evidence(stage=STAGE, kind=Kind.C2PA_INVALID, supports=Level.TAMPERED, details=details,
                             summary=f"Content Credentials broken: {problem.words}. Signed by {who}; "
                                     "nothing these credentials say can be relied on.")]
        if problem is not None and result.state == "Trusted":
            return [Evidence(stage=STAGE, kind=Kind.C2PA_SIGNER_UNCHECKED, supports=Level.SIGNED_UNTRUSTED,
                             details=details,
                             summary=f"Signed by {who}, but {problem.words}, so the credentials are not shown as "
                                     f"verified. The content is unchanged since signing.{stamp}")]

    if result.state == "Trusted":
        issuer = f", certificate issued by {signer.issuer}" if signer and signer.issuer else ""
        return [Evidence(stage=STAGE, kind=Kind.C2PA_TRUSTED, supports=Level.VERIFIED, details=details,
                         summary=f"Verified Content Credentials: signed by {who}{issuer}, "
                                 f"a signer on your trust list; the content is unchanged since signing.{stamp}")]
    if result.state == "Invalid":
        # The active manifest's own results can name more than the summary list: all of them count.
        codes = list(dict.fromkeys(codes + [c for c in result.active_failures if c not in codes]))
        if "signingCredential.expired" in codes and set(codes) <= _SIGNER_ONLY:
            details["category"] = CERTIFICATE_EXPIRED
            return [Evidence(stage=STAGE, kind=Kind.C2PA_EXPIRED, supports=Level.SIGNED_UNTRUSTED, details=details,
                             summary=_expired(who, signer, now))]
        lead = next((c for c in _LEAD if c in codes), None) or next(
            (c for c in codes if c not in _SIGNER_ONLY), codes[0] if codes else "general.error")
        said = next((f.explanation for f in result.failures if f.code == lead), "")
        words = validation_words(lead, result.mime, said)
        details["category"] = category(lead)
        if lead == "assertion.dataHash.mismatch" and result.binding is not None and result.binding.covered is False:
            # The hash leaves out bytes where no manifest is and covers the manifest's real place: the
            # writer put them apart, which says nothing about the pixels.
            words, details["category"] = STRUCTURE_WORDS, STRUCTURAL_DEFECT
            details["binding"] = {"exclusions": [list(e) for e in result.binding.exclusions],
                                  "manifest_at": list(result.binding.manifest_at or [])}
            for item in details["failures"]:
                if item["code"] == lead:
                    item.update(words=STRUCTURE_WORDS, category=STRUCTURAL_DEFECT)
        elif lead == "signingCredential.invalid":
            problem = _signer_problem(signer, allowed)
            if problem is not None and problem.reason == "purpose":
                words = problem.words
        more = len({c for c in codes if c not in _SIGNER_ONLY}) - 1
        return [Evidence(
            stage=STAGE, kind=Kind.C2PA_INVALID, supports=Level.TAMPERED, details=details,
            summary=f"Content Credentials broken: {words}."
                    + (f" ({more} more problem{'s' if more > 1 else ''}.)" if more > 0 else "")
                    + f" Signed by {who}.")]
    if result.state == "Valid":
        hint = "" if trust.get("loaded", True) else " (no trust list is loaded: run `credence trust update`)"
        return [Evidence(stage=STAGE, kind=Kind.C2PA_UNTRUSTED, supports=Level.SIGNED_UNTRUSTED, details=details,
                         summary=f"Signed by {who}, not on your trust list{hint}. "
                                 f"The content is unchanged since signing.{stamp}")]
    return [Evidence(stage=STAGE, kind=Kind.C2PA_UNVALIDATED, details=details,
                     summary=f"Content Credentials signed by {who} were read but not validated.")]
