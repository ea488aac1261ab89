"""C2PA results in words a reader understands, and the level each one argues for.

The validation codes are the C2PA specification's; the sentences are ours, in one table (``CODES``:
every code c2pa-rs can emit -> kind, a category for the reader, plain words; docs/provenance.md). A
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
from dataclasses import asdict, dataclass
from typing import Any

from server.verdicts import Evidence, Level
from server.vocabulary import Kind, Stage
from worker.stages.c2pa_read import C2paResult, Ingredient, Manifest, SignerInfo
from worker.stages.c2pa_signer import SignerProblem, content_signing_ekus, judge

STAGE = Stage.C2PA

# What a validation code means for the reader: a small set of categories the desk and tests rely on.
CONTENT_CHANGED = "content-changed"          # the signed content (pixels, sound, ...) no longer matches
CREDENTIALS_CHANGED = "credentials-changed"  # the credentials themselves were altered or are incomplete
SIGNATURE_INVALID = "signature-invalid"      # the signature does not verify
CERTIFICATE_EXPIRED = "certificate-expired"  # signed outside the certificate's validity
CERTIFICATE_PURPOSE = "certificate-purpose"  # the certificate is not allowed to sign content
CERTIFICATE_REVOKED = "certificate-revoked"
UNTRUSTED_SIGNER = "untrusted-signer"        # valid, but the signer does not chain to your trust list
STRUCTURAL_DEFECT = "structural-defect"      # malformed or self-contradictory, often the writer's bug
TIME_STAMP = "time-stamp"                    # about the signature's time-stamp only
INGREDIENT = "ingredient"                    # about an ingredient's credentials, not this file's
NOT_CHECKED = "not-checked"                  # something could not be checked at all
PASSED = "passed"                            # a success code: a check that passed
NOTE = "note"                                # informational: neither success nor failure


@dataclass(frozen=True)
class Code:
    kind: str        # success / informational / failure, as the C2PA specification files the code
    category: str
    words: str


S, I, F = "success", "informational", "failure"
# Every status code of the C2PA 2.x specification (Standard Status Codes) that c2pa-rs defines
# (sdk/src/validation_results.rs, validation_codes), plus the 1.x names the library still reads in
# older ingredients. Content hash mismatches have "{what}" filled in by the file's type.
CODES: dict[str, Code] = {
    # -- success
    "claimSignature.validated": Code(S, PASSED, "the signature over the credentials verifies"),
    "claimSignature.insideValidity": Code(S, PASSED, "the file was signed while the signing certificate was valid"),
    "signingCredential.trusted": Code(S, PASSED, "the signer's certificate chains to an anchor on your trust list"),
    "signingCredential.ocsp.notRevoked": Code(S, PASSED, "the signing certificate was not revoked"),
    "timeStamp.validated": Code(S, PASSED, "the time-stamp is well formed and matches the signature"),
    "timeStamp.trusted": Code(S, PASSED, "the time-stamp comes from an authority on your time-stamp trust list"),
    "assertion.hashedURI.match": Code(S, PASSED, "a part of the credentials is unchanged since signing"),
    "assertion.dataHash.match": Code(S, PASSED, "the content is unchanged since signing"),
    "assertion.bmffHash.match": Code(S, PASSED, "the content is unchanged since signing"),
    "assertion.boxesHash.match": Code(S, PASSED, "the content is unchanged since signing"),
    "assertion.collectionHash.match": Code(S, PASSED, "the files covered by the credentials are unchanged"),
    "assertion.accessible": Code(S, PASSED, "a part of the credentials stored elsewhere could be read"),
    "ingredient.manifest.validated": Code(S, PASSED, "an ingredient's credentials are unchanged"),
    "ingredient.claimSignature.validated": Code(S, PASSED, "an ingredient's signature is unchanged"),
    # -- informational
    "signingCredential.ocsp.skipped": Code(I, NOTE, "the signing certificate's revocation status was not checked online"),
    "signingCredential.ocsp.inaccessible":
        Code(I, NOTE, "the signing certificate's revocation status could not be fetched"),
    "timeStamp.mismatch": Code(I, TIME_STAMP, "the time-stamp does not match the signature"),
    "timeStamp.malformed": Code(I, TIME_STAMP, "the time-stamp is malformed"),
    "timeStamp.outsideValidity": Code(I, TIME_STAMP, "the time-stamp falls outside its authority's certificate validity"),
    "timeStamp.untrusted":
        Code(I, TIME_STAMP, "the time-stamp comes from an authority that is not on your time-stamp trust list"),
    "manifest.unknownProvenance": Code(I, NOTE, "the credentials are of a kind this verifier cannot interpret"),
    "manifest.unreferenced": Code(I, NOTE, "the store holds credentials that no ingredient refers to"),
    "algorithm.deprecated": Code(I, NOTE, "the credentials were signed or hashed with a deprecated algorithm"),
    "timeOfSigning.insideValidity": Code(I, NOTE, "the claimed signing time is inside the certificate's validity"),
    "ingredient.unknownProvenance": Code(I, NOTE, "an ingredient carries no credentials"),
    "assertion.dataHash.additionalExclusionsPresent":
        Code(I, NOTE, "the content hash leaves out more of the file than the credentials need"),
    # -- failure: the content
    "assertion.dataHash.mismatch": Code(F, CONTENT_CHANGED, "{what} changed after signing (or the file was cut short)"),
    "assertion.bmffHash.mismatch": Code(F, CONTENT_CHANGED, "{what} changed after signing"),
    "assertion.boxesHash.mismatch": Code(F, CONTENT_CHANGED, "{what} changed after signing"),
    "assertion.collectionHash.mismatch": Code(F, CONTENT_CHANGED, "files covered by the credentials were changed after signing"),
    "assertion.collectionHash.incorrectFileCount":
        Code(F, CONTENT_CHANGED, "a file covered by the credentials is missing from the collection"),
    # -- failure: the credentials themselves
    "assertion.hashedURI.mismatch":
        Code(F, CREDENTIALS_CHANGED, "part of the credentials (an assertion such as the edit history) was changed after signing"),
    "hashedURI.mismatch": Code(F, CREDENTIALS_CHANGED, "part of the credentials was changed after signing"),
    "hashedURI.missing": Code(F, CREDENTIALS_CHANGED, "part of the signed credentials is missing from the file"),
    "assertion.missing": Code(F, CREDENTIALS_CHANGED, "part of the signed credentials is missing from the file"),
    "assertion.undeclared": Code(F, CREDENTIALS_CHANGED, "the credentials contain a part that was never signed"),
    "assertion.notRedacted": Code(F, CREDENTIALS_CHANGED, "a part the credentials say was removed is still there"),
    "assertion.outsideManifest": Code(F, CREDENTIALS_CHANGED, "the credentials sign a part kept outside their own manifest"),
    "claimSignature.mismatch":
        Code(F, SIGNATURE_INVALID, "the credentials were altered after they were signed: the signature no longer matches"),
    "claimSignature.missing": Code(F, SIGNATURE_INVALID, "the credentials carry no signature"),
    "claimSignature.outsideValidity":
        Code(F, CERTIFICATE_EXPIRED, "the credentials were signed outside the signing certificate's validity period"),
    "algorithm.unsupported":
        Code(F, NOT_CHECKED, "the credentials were signed with an algorithm this verifier does not accept"),
    # -- failure: the signer's certificate
    "signingCredential.untrusted":
        Code(F, UNTRUSTED_SIGNER, "the signer's certificate does not chain to an anchor on your trust list"),
    "signingCredential.invalid":
        Code(F, CERTIFICATE_PURPOSE, "certificate purpose not allowed, or a malformed certificate: the signing "
                                   "certificate is not valid for signing content (a key usage your settings do not "
                                   "allow, or a certificate outside the C2PA profile)"),
    "signingCredential.revoked": Code(F, CERTIFICATE_REVOKED, "the signing certificate was revoked by its issuer"),
    "signingCredential.ocsp.revoked": Code(F, CERTIFICATE_REVOKED, "the signing certificate was revoked by its issuer"),
    "signingCredential.ocsp.unknown":
        Code(F, NOT_CHECKED, "the signing certificate's revocation status could not be confirmed"),
    # c2pa uses this code for any date outside the certificate's validity, not-yet-valid included.
    "signingCredential.expired":
        Code(F, CERTIFICATE_EXPIRED, "the signing certificate was outside its validity period (expired), and no "
                                   "trusted time-stamp shows the file was signed while it was valid"),
    # -- failure: structure (malformed or self-contradictory credentials, often the writing software's bug)
    "assertion.dataHash.malformed": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing is malformed"),
    "assertion.dataHash.redacted": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing was removed"),
    "assertion.bmffHash.malformed": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing is malformed"),
    "assertion.boxesHash.malformed": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing is malformed"),
    "assertion.boxesHash.unknownBox":
        Code(F, STRUCTURAL_DEFECT, "the file's structure does not match the record of it made at signing"),
    "assertion.collectionHash.invalidURI": Code(F, STRUCTURAL_DEFECT, "the list of files covered by the credentials is malformed"),
    "assertion.collectionHash.malformed": Code(F, STRUCTURAL_DEFECT, "the list of files covered by the credentials is malformed"),
    "assertion.multipleHardBindings": Code(F, STRUCTURAL_DEFECT, "the credentials bind to the content in conflicting ways"),
    "assertion.inaccessible": Code(F, NOT_CHECKED, "part of the credentials could not be read"),
    "assertion.cbor.invalid": Code(F, STRUCTURAL_DEFECT, "part of the credentials is malformed"),
    "assertion.json.invalid": Code(F, STRUCTURAL_DEFECT, "part of the credentials is malformed"),
    "assertion.required.missing": Code(F, STRUCTURAL_DEFECT, "part of the credentials lacks a required field"),
    "assertion.action.ingredientMismatch": Code(F, STRUCTURAL_DEFECT, "the edit history names an ingredient that does not match"),
    "assertion.action.malformed": Code(F, STRUCTURAL_DEFECT, "the edit history is malformed"),
    "assertion.action.redacted": Code(F, CREDENTIALS_CHANGED, "the edit history was removed from the credentials"),
    "assertion.action.redactionMismatch": Code(F, STRUCTURAL_DEFECT, "the edit history names a removal that does not match"),
    "assertion.selfRedacted": Code(F, STRUCTURAL_DEFECT, "the credentials remove one of their own parts"),
    "assertion.cloud-data.hardBinding": Code(F, STRUCTURAL_DEFECT, "the content binding is stored outside the file, which is not allowed"),
    "assertion.cloud-data.actions": Code(F, STRUCTURAL_DEFECT, "an update refers to an edit history stored outside the file"),
    "assertion.cloud-data.malformed": Code(F, STRUCTURAL_DEFECT, "part of the credentials stored elsewhere is malformed"),
    "assertion.ingredient.malformed": Code(F, STRUCTURAL_DEFECT, "an ingredient record is malformed"),
    "assertion.metadata.disallowed": Code(F, STRUCTURAL_DEFECT, "the credentials' metadata holds a field the specification does not allow"),
    "assertion.timestamp.malformed": Code(F, STRUCTURAL_DEFECT, "a time-stamp record in the credentials is malformed"),
    "claim.missing": Code(F, STRUCTURAL_DEFECT, "the credentials have no claim to check"),
    "claim.multiple": Code(F, STRUCTURAL_DEFECT, "the credentials carry more than one claim"),
    "claim.malformed": Code(F, STRUCTURAL_DEFECT, "the credentials' claim is malformed"),
    "claim.cbor.invalid": Code(F, STRUCTURAL_DEFECT, "the credentials' claim is malformed"),
    "claim.required.missing": Code(F, STRUCTURAL_DEFECT, "the credentials' claim lacks a required field"),
    "claim.hardBindings.missing": Code(F, STRUCTURAL_DEFECT, "the credentials are not bound to this file's content"),
    "manifest.inaccessible": Code(F, NOT_CHECKED, "the credentials refer to a manifest that is not in the file"),
    "manifest.missing": Code(F, NOT_CHECKED, "the credentials refer to a manifest that is not in the file"),
    "manifest.multipleParents": Code(F, STRUCTURAL_DEFECT, "the credentials name more than one parent"),
    "manifest.update.invalid": Code(F, STRUCTURAL_DEFECT, "an update to the credentials is not valid"),
    "manifest.update.wrongParents": Code(F, STRUCTURAL_DEFECT, "an update to the credentials has the wrong parent"),
    "manifest.timestamp.invalid": Code(F, STRUCTURAL_DEFECT, "a time-stamp manifest holds parts it may not hold"),
    "manifest.timestamp.wrongParents": Code(F, STRUCTURAL_DEFECT, "a time-stamp manifest has the wrong parent"),
    "manifest.compressed.invalid": Code(F, STRUCTURAL_DEFECT, "the compressed credentials are not valid"),
    "general.error": Code(F, NOT_CHECKED, "the credentials could not be validated"),
    # -- failure: ingredients (what went into this file, not this file's own credentials)
    "ingredient.hashedURI.mismatch": Code(F, INGREDIENT, "an ingredient's credentials were changed after signing"),
    "ingredient.manifest.mismatch": Code(F, INGREDIENT, "an ingredient's credentials were changed after signing"),
    "ingredient.claimSignature.mismatch": Code(F, INGREDIENT, "an ingredient's credentials were changed after signing"),
    "ingredient.manifest.missing": Code(F, INGREDIENT, "an ingredient's credentials are missing"),
    "ingredient.claimSignature.missing": Code(F, INGREDIENT, "an ingredient's signature is missing"),
}
del S, I, F
# The words of every code that is not a content mismatch (kept for callers that read words only).
EXPLANATIONS: dict[str, str] = {code: c.words for code, c in CODES.items() if "{what}" not in c.words}
# A data-hash mismatch whose exclusion does not cover where the manifest sits: the writer's defect.
STRUCTURE_WORDS = ("the file's structure does not match its credentials (often a defect of the software that "
                   "wrote them); the pixels may be unchanged")
_WHAT = (  # (MIME prefix, words); first match wins
    ("image/svg+xml", "the drawing (its SVG markup) was"),
    ("image/", "the pixels were"),
    ("audio/", "the sound was"),
    ("video/", "the video or its sound was"),
)
# Codes that speak about the signer, not about changes to content or credentials.
_SIGNER_ONLY = frozenset({"signingCredential.untrusted", "signingCredential.expired"})
# Which failure to lead with when there are several: content changes first.
_LEAD = ("assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
         "claimSignature.mismatch", "assertion.hashedURI.mismatch")


def explain(code: str, fallback: str = "", mime: str | None = None) -> str:
    """Plain words for one validation code; ``mime`` names what changed for a content mismatch."""
    known = CODES.get(code)
    if known is not None and "{what}" in known.words:
        what = next((words for prefix, words in _WHAT if (mime or "").startswith(prefix)), "the file's content was")
        return known.words.format(what=what)
    if known is not None:
        return known.words
    if code.startswith("signingCredential.ocsp"):
        return "the signing certificate's revocation status could not be confirmed"
    return fallback or f"validation failed ({code})"


def category(code: str) -> str:
    """What a code means for the reader (one of the categories above); unknown failures: not-checked."""
    known = CODES.get(code)
    return known.category if known is not None else NOT_CHECKED


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
    failures = [{"code": c, "words": explain(c, "", node.format), "category": category(c)} for c in node.failures]
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
        "failures": [{"code": f.code, "words": explain(f.code, f.explanation, result.mime), "category": category(f.code)}
                     for f in result.failures],
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
        words = explain(lead, next((f.explanation for f in result.failures if f.code == lead), ""), result.mime)
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
