// Where a badge goes on an image turned by a CSS transform (rotate, skew): on the image's own
// top-left corner, not on the empty corner of its bounding box. Pure arithmetic, so it is unit-tested.

/**
 * The linear part {a, b, c, d} of a computed `transform` ("matrix(a, b, c, d, e, f)"), or null when
 * it does not turn the image (none, a translation, a scale without mirroring): the box's corner is right then.
 */
export function turnOf(transform) {
  const m = /^matrix\(([^)]+)\)$/.exec(String(transform ?? '').trim());
  if (!m) return null; // 'none', or matrix3d (3-D: left to the bounding box)
  const [a, b, c, d] = m[1].split(',').map(Number);
  if ([a, b, c, d].some((n) => !Number.isFinite(n))) return null;
  if (Math.abs(b) < 1e-6 && Math.abs(c) < 1e-6 && a > 0 && d > 0) return null;
  return { a, b, c, d };
}

/**
 * The badge's top-left corner (viewport px) on an image of layout size `width` x `height` turned by
 * `turn`, whose bounding box is `rect`: the box's centre is the image's centre, and the badge's centre
 * sits `inset + size / 2` in from the image's own top-left corner, along its turned edges.
 */
export function turnedSpot(rect, width, height, turn, inset, size) {
  const cx = rect.left + rect.width / 2;
  const cy = rect.top + rect.height / 2;
  const u = -width / 2 + inset + size / 2;
  const v = -height / 2 + inset + size / 2;
  return { left: cx + turn.a * u + turn.c * v - size / 2, top: cy + turn.b * u + turn.d * v - size / 2 };
}
