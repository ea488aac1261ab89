import assert from 'node:assert/strict';
import { test } from 'node:test';

import { turnedSpot, turnOf } from '../src/content/geometry.js';

test('only transforms that turn an image move its badge off the bounding box corner', () => {
  assert.equal(turnOf('none'), null);
  assert.equal(turnOf('matrix(1, 0, 0, 1, 30, 40)'), null, 'a translation');
  assert.equal(turnOf('matrix(2, 0, 0, 0.5, 0, 0)'), null, 'a scale');
  assert.deepEqual(turnOf('matrix(0, 1, -1, 0, 0, 0)'), { a: 0, b: 1, c: -1, d: 0 });
  assert.deepEqual(turnOf('matrix(-1, 0, 0, 1, 0, 0)'), { a: -1, b: 0, c: 0, d: 1 }, 'mirrored');
  assert.equal(turnOf('matrix3d(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)'), null);
});

test('a badge on a turned image sits on the image\'s own top-left corner', () => {
  // 200 x 100 image turned 90° clockwise about its centre (500, 300): its box is 100 x 200 at (450, 200);
  // the image's top-left corner is now the box's top-right corner (550, 200).
  const quarter = turnOf('matrix(0, 1, -1, 0, 0, 0)');
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
});
