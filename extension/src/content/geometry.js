// Where a badge goes on an image turned by CSS transforms (rotate, skew), its own or its ancestors':
// on the image's own top-left corner, not on the empty corner of its bounding box. Pure arithmetic,
// so it is unit-tested.
//
// Only the linear part of each transform is needed ({a, b, c, d}: (x, y) -> (a x + c y, b x + d y), as
// in matrix(a, b, c, d, e, f)): a chain of 2-D transforms maps the image's box to a parallelogram, and
// a parallelogram's bounding box has the same centre; so the image's centre is its bounding box's
// centre, and its corners are that centre plus the product of the chain's linear parts applied to its
// half sizes. Translations and transform origins only move the centre, which the box already says.

export const NO_SHIFT = Object.freeze({ x: 0, y: 0 });
// A transform whose effect on screen is not affine (perspective) or could not be read: the browser's hit
// tests place the badge then (probedSpot), else the bounding box.
export const UNKNOWN = Object.freeze({ unknown: true });

const EPS = 1e-6;
const ANGLE_UNITS = { deg: Math.PI / 180, rad: 1, grad: Math.PI / 200, turn: 2 * Math.PI };

/** null (identity) for a linear part that changes nothing. */
function simplify(m) {
  if (Math.abs(m.a - 1) < EPS && Math.abs(m.b) < EPS && Math.abs(m.c) < EPS && Math.abs(m.d - 1) < EPS && !m.three) {
    return null;
  }
  return m;
}

/**
 * The linear part of a computed `transform`: null for none (or a translation), UNKNOWN where it is not
 * affine on screen. A matrix3d without perspective is flattened (`three`: its z terms do not reach the
 * plane of the image, unless an ancestor keeps 3-D or adds perspective: the caller checks).
 */
export function linearOf(transform) {
  const text = String(transform ?? '').trim();
  if (!text || text === 'none') return null;
  const m = /^(matrix|matrix3d)\(([^)]+)\)$/.exec(text);
  if (!m) return UNKNOWN;
  const n = m[2].split(',').map(Number);
  if (n.some((x) => !Number.isFinite(x))) return UNKNOWN;
  if (m[1] === 'matrix') return n.length === 6 ? simplify({ a: n[0], b: n[1], c: n[2], d: n[3] }) : UNKNOWN;
  if (n.length !== 16 || n[3] !== 0 || n[7] !== 0 || n[11] !== 0 || n[15] !== 1) return UNKNOWN;
  const flat = n[2] === 0 && n[6] === 0 && n[8] === 0 && n[9] === 0 && n[10] === 1;
  return simplify({ a: n[0], b: n[1], c: n[4], d: n[5], ...(flat ? {} : { three: true }) });
}

/** The computed `rotate` property (a turn about z only; any other axis: UNKNOWN). */
export function rotateOf(value) {
  const text = String(value ?? 'none').trim();
  if (!text || text === 'none') return null;
  const m = /^(?:z\s+|0\s+0\s+1\s+)?(-?[\d.]+(?:e[-+]?\d+)?)(deg|rad|grad|turn)$/i.exec(text);
  if (!m) return UNKNOWN;
  const angle = Number(m[1]) * ANGLE_UNITS[m[2].toLowerCase()];
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  return simplify({ a: cos, b: sin, c: -sin, d: cos });
}

/** The computed `scale` property ("sx [sy [sz]]"; sz leaves the image's plane as it is). */
export function scaleOf(value) {
  const text = String(value ?? 'none').trim();
  if (!text || text === 'none') return null;
  const parts = text.split(/\s+/).map((p) => (p.endsWith('%') ? Number(p.slice(0, -1)) / 100 : Number(p)));
  if (!parts.length || parts.length > 3 || parts.some((x) => !Number.isFinite(x))) return UNKNOWN;
  return simplify({ a: parts[0], b: 0, c: 0, d: parts[1] ?? parts[0] });
}

/** p · q (q applied first); null is the identity, UNKNOWN absorbs. */
export function multiply(p, q) {
  if (p === UNKNOWN || q === UNKNOWN) return UNKNOWN;
  if (!p) return q;
  if (!q) return p;
  return simplify({
    a: p.a * q.a + p.c * q.b, b: p.b * q.a + p.d * q.b, c: p.a * q.c + p.c * q.d, d: p.b * q.c + p.d * q.d,
    ...(p.three || q.three ? { three: true } : {}),
  });
}

/** Does a computed style transform its element at all (`transform`, or the `rotate`/`scale` properties)? */
export function transforms(style) {
  return style.transform !== 'none' || (style.rotate ?? 'none') !== 'none' || (style.scale ?? 'none') !== 'none';
}

/** An element's own linear part from its computed style: translate, rotate, scale, then transform. */
export function styleLinear(style) {
  return multiply(multiply(rotateOf(style.rotate), scaleOf(style.scale)), linearOf(style.transform));
}

/**
 * Does `m` (the chain's product) leave the badge's spot at the bounding box's corner? Identity, or a
 * scale without mirroring: the box is the image then.
 */
export function upright(m) {
  return !m || (Math.abs(m.b) < EPS && Math.abs(m.c) < EPS && m.a > 0 && m.d > 0);
}

/**
 * Where a video poster's badge goes, from the video's own badge (in the image's own axes): beside it
 * when the box (`width` x `height`) has room for both side by side, else below it when it has room
 * there, else beside it anyway (overhanging the box rather than covering the video's badge).
 */
export function posterShift(width, height, inset, size, gap) {
  const step = size + gap;
  const fits = (side) => side >= inset + step + size;
  return fits(width) || !fits(height) ? { x: step, y: 0 } : { x: 0, y: step };
}

function unit(x, y) {
  const length = Math.hypot(x, y);
  return length > EPS ? { x: x / length, y: y / length } : null;
}

/**
 * The badge's top-left corner (viewport px) on an image of layout size `width` x `height` turned by
 * `turn` (the linear part of its transforms, ancestors' included), whose bounding box is `rect`: the
 * box's centre is the image's centre, and the badge's centre sits `inset + size / 2` screen pixels in
 * from the image's own top-left corner along each of its turned edges (`shift` further along them: a
 * poster's badge beside its video's). Null when the transform flattens the image to a line.
 */
export function turnedSpot(rect, width, height, turn, inset, size, shift = NO_SHIFT) {
  const cx = rect.left + rect.width / 2;
  const cy = rect.top + rect.height / 2;
  const across = unit(turn.a, turn.b); // the image's top edge, on screen
  const down = unit(turn.c, turn.d); // its left edge
  if (!across || !down) return null;
  const cornerX = cx - (turn.a * width + turn.c * height) / 2;
  const cornerY = cy - (turn.b * width + turn.d * height) / 2;
  const u = inset + shift.x + size / 2;
  const v = inset + shift.y + size / 2;
  return {
    left: cornerX + across.x * u + down.x * v - size / 2,
    top: cornerY + across.y * u + down.y * v - size / 2,
  };
}

/**
 * Where a badge goes on an image seen through perspective, which the arithmetic above cannot place: its
 * top-left corner at the first spot along the bounding box's diagonal, from the box's corner (plus `inset`
 * and `shift`) inwards every `step` px, where `onImage` (the browser's hit test, viewport px) finds the image
 * under both the badge's top-left and bottom-right corners (1 px in from them). Null when no spot in the
 * box's first half does (hit tests do not reach the image: out of view, `pointer-events: none`).
 */
export function probedSpot(rect, onImage, inset, size, shift = NO_SHIFT, step = 4) {
  const along = unit(rect.width, rect.height);
  if (!along) return null;
  const left = rect.left + inset + shift.x;
  const top = rect.top + inset + shift.y;
  const reach = Math.hypot(rect.width, rect.height) / 2;
  for (let t = 0; t <= reach; t += step) {
    const x = left + along.x * t;
    const y = top + along.y * t;
    if (onImage(x + 1, y + 1) && onImage(x + size - 1, y + size - 1)) return { left: x, top: y };
  }
  return null;
}
