// Credence desk, report page tools: the magnifier and the forensic views made on demand.
// Plain JavaScript, no inline script or style (the desk's CSP): styles are set through the CSSOM only.
'use strict';

(() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';
  const FORENSICS_POLL_MS = 1000;
  const FORENSICS_LIMIT_MS = 3 * 60 * 1000;

  // ---- magnifier -----------------------------------------------------------------------------
  function setupMagnifier() {
    const toggle = document.querySelector('[data-magnifier]');
    const zoomSelect = document.querySelector('[data-magnifier-zoom]');
    if (!toggle) return;
    const lens = document.createElement('div');
    lens.className = 'lens';
    lens.hidden = true;
    lens.setAttribute('aria-hidden', 'true');
    document.body.append(lens);
    const SIZE = 180;

    const targets = () => document.querySelectorAll('.report img:not(.lens-skip)');
    const move = (event) => {
      const img = event.currentTarget;
      if (!toggle.checked || !img.complete || !img.naturalWidth) { lens.hidden = true; return; }
      const zoom = Number(zoomSelect?.value || 3);
      const box = img.getBoundingClientRect();
      const x = event.clientX - box.left;
      const y = event.clientY - box.top;
      if (x < 0 || y < 0 || x > box.width || y > box.height) { lens.hidden = true; return; }
      lens.hidden = false;
      lens.style.width = `${SIZE}px`;
      lens.style.height = `${SIZE}px`;
      lens.style.left = `${event.pageX - SIZE / 2}px`;
      lens.style.top = `${event.pageY - SIZE / 2}px`;
      lens.style.backgroundImage = `url("${img.currentSrc || img.src}")`;
      lens.style.backgroundSize = `${box.width * zoom}px ${box.height * zoom}px`;
      lens.style.backgroundPosition = `${SIZE / 2 - x * zoom}px ${SIZE / 2 - y * zoom}px`;
    };
    const hide = () => { lens.hidden = true; };
    const bind = () => {
      for (const img of targets()) {
        if (img.dataset.magnifierBound) continue;
        img.dataset.magnifierBound = '1';
        img.addEventListener('pointermove', move);
        img.addEventListener('pointerleave', hide);
      }
    };
    bind();
    toggle.addEventListener('change', () => {
      document.body.classList.toggle('is-magnifying', toggle.checked);
      if (!toggle.checked) hide();
    });
    document.addEventListener('credence:images', bind);
  }

  // ---- forensic views ------------------------------------------------------------------------
  function setupForensics() {
    const section = document.querySelector('[data-forensics]');
    const body = section?.querySelector('[data-forensics-body]');
    const form = section?.querySelector('[data-forensics-form]');
    if (!section || !body || !form) return;
    const say = (text) => {
      body.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: text }));
    };
    const show = (html) => {
      body.innerHTML = html; // rendered by the desk's own template (autoescaped), same origin
      document.dispatchEvent(new CustomEvent('credence:images'));
    };
    const poll = async (started) => {
      while (Date.now() - started < FORENSICS_LIMIT_MS) {
        const response = await fetch(section.dataset.forensics, { headers: { Accept: 'application/json' } });
        if (!response.ok) throw new Error(`status ${response.status}`);
        const answer = await response.json();
        if (answer.state !== 'none') { show(answer.html); return; }
        await new Promise((resolve) => setTimeout(resolve, FORENSICS_POLL_MS));
      }
      say('The forensic views are taking longer than expected. Reload the page later.');
    };
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      form.querySelector('button')?.setAttribute('disabled', '');
      try {
        const response = await fetch(form.action, {
          method: 'POST', body: new FormData(form),
          headers: { Accept: 'application/json', 'X-CSRFToken': csrf(), 'X-Requested-With': 'fetch' },
        });
        const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
        if (!response.ok) { say(answer.error || 'The forensic views could not be asked for.'); return; }
        say('Making the forensic views…');
        await poll(Date.now());
      } catch (err) {
        say(`Something went wrong: ${err.message}. Reload the page and try again.`);
      }
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    setupMagnifier();
    setupForensics();
  });
})();
