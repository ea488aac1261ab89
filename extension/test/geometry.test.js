import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  linearOf, multiply, NO_SHIFT, posterShift, probedSpot, rotateOf, scaleOf, styleLinear, transforms, turnedSpot, UNKNOWN,
  upright,
} from '../src/content/geometry.js';

const close = (actual, expected, what) => {
  for (const key of Object.keys(expected)) {
    assert.ok(Math.abs(actual[key] - expected[key]) < 1e-9, `${what ?? ''} ${key}: ${actual[key]} != ${expected[key]}`);
  }
};

/** The linear part of `rotate(deg)`, as a browser computes it. */
function rotation(deg) {
  const r = (deg * Math.PI) / 180;
  return { a: Math.cos(r), b: Math.sin(r), c: -Math.sin(r), d: Math.cos(r) };
}

test('only transforms that turn an image move its badge off the bounding box corner', () => {
  assert.equal(linearOf('none'), null);
  assert.equal(linearOf('matrix(1, 0, 0, 1, 30, 40)'), null, 'a translation');
  assert.ok(upright(linearOf('matrix(2, 0, 0, 0.5, 0, 0)')), 'a scale');
  assert.deepEqual(linearOf('matrix(0, 1, -1, 0, 0, 0)'), { a: 0, b: 1, c: -1, d: 0 });
  assert.ok(!upright(linearOf('matrix(0, 1, -1, 0, 0, 0)')));
  assert.ok(!upright(linearOf('matrix(-1, 0, 0, 1, 0, 0)')), 'mirrored');
  assert.ok(!upright(linearOf('matrix(1, 0, 0.5, 1, 0, 0)')), 'skewed');
  assert.equal(linearOf('matrix3d(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)'), null);
  // rotateY(60deg) without perspective: flattened, the image is half as wide on screen.
  const c = Math.cos(Math.PI / 3);
  const s = Math.sin(Math.PI / 3);
  assert.deepEqual(linearOf(`matrix3d(${c}, 0, ${-s}, 0, 0, 1, 0, 0, ${s}, 0, ${c}, 0, 0, 0, 0, 1)`),
    { a: c, b: 0, c: 0, d: 1, three: true });
  assert.equal(linearOf('matrix3d(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, -0.002, 0, 0, 0, 1)'), UNKNOWN, 'perspective');
  assert.equal(linearOf('rotate(10deg)'), UNKNOWN, 'not a computed value');
});

test('the rotate and scale properties count as transforms, applied before `transform`', () => {
  close(rotateOf('90deg'), rotation(90));
  close(rotateOf('0.25turn'), rotation(90));
  close(rotateOf('z 45deg'), rotation(45));
  assert.equal(rotateOf('none'), null);
  assert.equal(rotateOf('x 45deg'), UNKNOWN, 'about another axis');
  assert.deepEqual(scaleOf('2 0.5'), { a: 2, b: 0, c: 0, d: 0.5 });
  assert.deepEqual(scaleOf('-1'), { a: -1, b: 0, c: 0, d: -1 });
  assert.equal(scaleOf('none'), null);
  const style = { transform: 'matrix(2, 0, 0, 1, 0, 0)', rotate: '90deg', scale: 'none' };
  assert.ok(transforms(style) && !transforms({ transform: 'none', rotate: 'none', scale: 'none' }));
  assert.ok(!transforms({ transform: 'none' }), 'a browser without the properties');
  // rotate(90deg) then the matrix: the x axis, scaled by 2, points down on screen.
  close(styleLinear(style), { a: 0, b: 2, c: -1, d: 0 });
});

test('a chain of transforms multiplies, the nearest one applied first', () => {
  close(multiply(rotation(15), rotation(15)), rotation(30));
  assert.equal(multiply(rotation(90), multiply(rotation(-90), null)), null, 'they cancel out');
  assert.equal(multiply(UNKNOWN, rotation(10)), UNKNOWN);
  // A skew inside a rotated parent is not the rotated parent inside the skew.
  const skew = { a: 1, b: 0, c: 1, d: 1 };
  assert.notDeepEqual(multiply(rotation(90), skew), multiply(skew, rotation(90)));
  close(multiply(rotation(90), skew), { a: 0, b: 1, c: -1, d: 1 });
});

test('a badge on a turned image sits on the image\'s own top-left corner', () => {
  // 200 x 100 image turned 90° clockwise about its centre (500, 300): its box is 100 x 200 at (450, 200);
  // the image's top-left corner is now the box's top-right corner (550, 200).
  const quarter = linearOf('matrix(0, 1, -1, 0, 0, 0)');
  const spot = turnedSpot({ left: 450, top: 200, width: 100, height: 200 }, 200, 100, quarter, 4, 22);
  assert.deepEqual(spot, { left: 550 - 4 - 22, top: 200 + 4 });
  // Not turned (identity): the usual inset from the box's corner.
  const none = { a: 1, b: 0, c: 0, d: 1 };
  assert.deepEqual(turnedSpot({ left: 10, top: 20, width: 200, height: 100 }, 200, 100, none, 4, 22), { left: 14, top: 24 });
  // Turned 45°: the corner is on the box's left edge, half way down; the badge is inside the image.
  const r = Math.SQRT1_2;
  const s = turnedSpot({ left: 0, top: 0, width: 150 * Math.SQRT2, height: 150 * Math.SQRT2 }, 150, 150,
    { a: r, b: r, c: -r, d: r }, 4, 22);
  const centre = { x: s.left + 11, y: s.top + 11 };
  assert.ok(Math.abs(centre.x - 75 * Math.SQRT2) < 1e-9, centre.x.toFixed(2)); // straight below the top corner
  assert.ok(Math.abs(centre.y - 15 * Math.SQRT2) < 1e-9, centre.y.toFixed(2)); // 15 px along both edges, turned
  assert.equal(turnedSpot({ left: 0, top: 0, width: 0, height: 100 }, 200, 100, { a: 0, b: 0, c: 0, d: 1 }, 4, 22), null,
    'flattened to a line: no corner to find');
});

test('an image turned by its ancestors: the badge on its own corner, inside the image, in screen pixels', () => {
  // A 160 x 120 image in a div turned 15° in a div turned 15°: the image is turned 30° about its centre.
  const turn = multiply(rotation(15), multiply(rotation(15), null));
  const centre = { x: 300, y: 200 };
  const corners = [[-80, -60], [80, -60], [80, 60], [-80, 60]]
    .map(([x, y]) => ({ x: centre.x + turn.a * x + turn.c * y, y: centre.y + turn.b * x + turn.d * y }));
  const xs = corners.map((p) => p.x);
  const ys = corners.map((p) => p.y);
  const box = {
    left: Math.min(...xs), top: Math.min(...ys), width: Math.max(...xs) - Math.min(...xs), height: Math.max(...ys) - Math.min(...ys),
  };
  const spot = turnedSpot(box, 160, 120, turn, 4, 22);
  const badge = { x: spot.left + 11, y: spot.top + 11 };
  // 15 px from the image's own top-left corner along both of its edges...
  const along = rotation(30);
  close(badge, { x: corners[0].x + 15 * along.a + 15 * along.c, y: corners[0].y + 15 * along.b + 15 * along.d });
  // ... so inside the turned image, while the bounding box's corner spot is outside it.
  const insideQuad = (p) => corners.every((a, i) => {
    const b = corners[(i + 1) % 4];
    return (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x) >= 0;
  });
  assert.ok(insideQuad(badge));
  assert.ok(!insideQuad({ x: box.left + 15, y: box.top + 15 }));
  // An ancestor that scales by half: the image is smaller on screen, the badge is not, and it keeps
  // its 15 screen pixels from the corner (not 7.5, which would leave it overhanging the image).
  const half = multiply({ a: 0.5, b: 0, c: 0, d: 0.5 }, rotation(90));
  const small = turnedSpot({ left: 450, top: 200, width: 50, height: 100 }, 200, 100, half, 4, 22);
  assert.deepEqual(small, { left: 500 - 4 - 22, top: 200 + 4 });
});

test('a video poster\'s badge sits beside the video\'s, or below it in a narrow box, never on it', () => {
  assert.deepEqual(posterShift(320, 180, 4, 22, 4), { x: 26, y: 0 }, 'beside');
  assert.deepEqual(posterShift(52, 180, 4, 22, 4), { x: 26, y: 0 }, 'just room beside');
  assert.deepEqual(posterShift(45, 180, 4, 22, 4), { x: 0, y: 26 }, 'narrow: below');
  assert.deepEqual(posterShift(45, 45, 4, 22, 4), { x: 26, y: 0 }, 'no room either way: beside, overhanging');
  // Turned 90° clockwise, the shift follows the video's own top edge: downwards on the screen.
  const quarter = linearOf('matrix(0, 1, -1, 0, 0, 0)');
  const box = { left: 450, top: 200, width: 100, height: 200 };
  const first = turnedSpot(box, 200, 100, quarter, 4, 22);
  const second = turnedSpot(box, 200, 100, quarter, 4, 22, { x: 26, y: 0 });
  assert.deepEqual(second, { left: first.left, top: first.top + 26 });
  assert.deepEqual(turnedSpot(box, 200, 100, quarter, 4, 22, NO_SHIFT), first);
});

test('an image seen through perspective: the badge where hit tests find the image, inwards from the box corner', () => {
  // A trapezoid, as rotateY under perspective draws a 200 x 150 image: its left edge (x = 100) runs from
  // y = 60 to y = 190, its right edge (x = 300) from y = 40 to y = 210; the bounding box's corner (100, 40)
  // is off the image.
  const rect = { left: 100, top: 40, width: 200, height: 170 };
  const topAt = (x) => 60 - ((x - 100) / 200) * 20;
  const bottomAt = (x) => 190 + ((x - 100) / 200) * 20;
  const onImage = (x, y) => x >= 100 && x <= 300 && y >= topAt(x) && y <= bottomAt(x);
  const at = probedSpot(rect, onImage, 15, 22);
  assert.ok(at, 'found');
  for (const [x, y] of [[at.left + 1, at.top + 1], [at.left + 21, at.top + 21]]) { // 1 px in from its corners
    assert.ok(onImage(x, y), `badge corner (${x}, ${y}) on the image`);
  }
  const back = 4 / Math.hypot(200, 170);
  assert.ok(!onImage(at.left + 1 - 200 * back, at.top + 1 - 170 * back), 'the first such spot along the diagonal');
  assert.ok(at.left - rect.left < 40, 'near the image\'s own corner');
  // A poster's shift moves the start along with it; nothing found (out of view): null.
  const shifted = probedSpot(rect, onImage, 15, 22, { x: 26, y: 0 });
  assert.ok(shifted.left > at.left && onImage(shifted.left + 1, shifted.top + 1));
  assert.equal(probedSpot(rect, () => false, 15, 22), null);
  assert.equal(probedSpot({ left: 0, top: 0, width: 0, height: 0 }, onImage, 15, 22), null);
});
