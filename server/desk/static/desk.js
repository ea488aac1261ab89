// Credence desk: a little plain JavaScript. Every page works without it; it adds drag and drop,
// checks that run without leaving the page with live per-stage progress, and copy buttons.
'use strict';

(() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';
  const POLL_MS = 700;
  const POLL_LIMIT_MS = 10 * 60 * 1000;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // ---- drop zone ---------------------------------------------------------------------------
  function setupDrop() {
    const drop = document.getElementById('drop');
    const input = document.getElementById('files');
    const list = document.getElementById('file-list');
    if (!drop || !input) return;
    const show = () => {
      const names = [...input.files].map((f) => f.name);
      list.textContent = names.length ? `Chosen: ${names.join(', ')}` : '';
    };
    input.addEventListener('change', show);
    for (const type of ['dragenter', 'dragover']) {
      drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add('is-over'); });
    }
    for (const type of ['dragleave', 'drop']) {
      drop.addEventListener(type, () => drop.classList.remove('is-over'));
    }
    drop.addEventListener('drop', (event) => {
      event.preventDefault();
      const files = event.dataTransfer?.files;
      if (!files?.length) return;
      const transfer = new DataTransfer();
      for (const file of files) transfer.items.add(file);
      input.files = transfer.files;
      show();
    });
  }

  // ---- checks with live progress -------------------------------------------------------------
  // Seconds since the check was queued, as the workers reported each stage's start and end.
  const since = (at, origin) => {
    if (!at || !origin) return null;
    const s = (Date.parse(at) - Date.parse(origin)) / 1000;
    return Number.isFinite(s) ? `${s < 0 ? 0 : s.toFixed(1)} s` : null;
  };

  function renderStages(stages, queuedAt) {
    const ol = el('ol', { class: 'stages', 'aria-label': 'Stages' });
    for (const s of stages || []) {
      const shown = s.queued ? 'queued' : s.state;
      const state = shown + (s.ms !== undefined ? ` · ${s.ms} ms` : '');
      const start = since(s.started_at, queuedAt);
      const end = since(s.ended_at, queuedAt);
      const when = start ? (end ? `${start} to ${end}` : `since ${start}`) : null;
      ol.append(el('li', { class: `stage stage--${shown}`, 'data-stage': s.key, 'data-state': s.state,
        'data-started': s.started_at || null, 'data-ended': s.ended_at || null, title: s.note || null },
      el('span', { class: 'stage__name', text: s.label }),
      el('span', { class: 'stage__state', text: s.note && s.state !== 'done' ? `${shown}: ${s.note}` : state }),
      when ? el('span', { class: 'stage__time muted', text: when, title: 'time since the check was queued' }) : null));
    }
    return ol;
  }

  function renderCheck(check) {
    const li = el('li', { class: 'check', 'data-check-id': check.check_id, 'data-status': check.status });
    li.append(el('p', { class: 'check__name', text: check.name || check.check_id }));
    if (check.phase && check.status !== 'done') li.append(el('p', { class: 'check__phase muted', text: check.phase }));
    li.append(renderStages(check.stages, check.queued_at));
    if (check.verdict) {
      const v = check.verdict;
      const row = el('div', { class: 'check__verdict' },
        el('span', { class: `badge badge--${v.badge}`, 'data-level': v.level, text: v.label }),
        el('span', { class: 'check__summary', text: v.summary }));
      if (check.report_url) row.append(el('a', { href: check.report_url, class: 'report-link', text: 'Open report' }));
      li.append(row);
    } else if (check.status === 'unknown') {
      li.append(el('p', { class: 'muted', text: 'This check is unknown.' }));
    }
    return li;
  }

  function setupCheckForm() {
    const form = document.getElementById('check-form');
    if (!form) return;
    const section = document.getElementById('progress-section');
    const list = document.getElementById('progress');
    const errors = document.getElementById('form-errors');
    const status = document.getElementById('progress-status');
    const button = document.getElementById('check-button');
    const shown = new Map();

    const update = (checks) => {
      for (const check of checks) {
        const fresh = renderCheck(check);
        const old = shown.get(check.check_id);
        if (old) old.replaceWith(fresh); else list.prepend(fresh);
        shown.set(check.check_id, fresh);
      }
    };

    const poll = async (ids, started) => {
      while (Date.now() - started < POLL_LIMIT_MS) {
        const response = await fetch(`/desk/api/checks?ids=${ids.join(',')}`, { headers: { Accept: 'application/json' } });
        if (!response.ok) throw new Error(`status ${response.status}`);
        const body = await response.json();
        update(body.checks);
        const pending = body.checks.filter((c) => c.status === 'pending').map((c) => c.check_id);
        if (!pending.length) {
          status.textContent = `${body.checks.length} check${body.checks.length === 1 ? '' : 's'} done.`;
          return;
        }
        ids = pending;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      errors.textContent = '';
      button.disabled = true;
      try {
        const response = await fetch(form.action, {
          method: 'POST', body: new FormData(form),
          headers: { Accept: 'application/json', 'X-CSRFToken': csrf(), 'X-Requested-With': 'fetch' },
        });
        const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
        section.hidden = false;
        if (!response.ok) {
          errors.textContent = body.error || 'The checks could not be started.';
          return;
        }
        if (body.errors?.length) {
          errors.append(el('p', { text: 'Not checked:' }),
            el('ul', {}, ...body.errors.map((e) => el('li', { text: `${e.url}: ${e.error}` }))));
        }
        update(body.checks);
        form.reset();
        document.getElementById('file-list').textContent = '';
        status.textContent = `${body.checks.length} check${body.checks.length === 1 ? '' : 's'} started.`;
        const ids = body.checks.filter((c) => c.status === 'pending').map((c) => c.check_id);
        if (ids.length) await poll(ids, Date.now());
        else status.textContent = 'Done.';
      } catch (err) {
        section.hidden = false;
        errors.textContent = `Something went wrong: ${err.message}. Reload the page and try again.`;
      } finally {
        button.disabled = false;
      }
    });
  }

  // The progress page of one check (desk/check_status.html): live stages, then its report.
  function setupLiveCheck() {
    const card = document.querySelector('[data-live-check]');
    if (!card) return;
    const id = card.dataset.liveCheck;
    const started = Date.now();
    const tick = async () => {
      try {
        const response = await fetch(`/desk/api/checks?ids=${encodeURIComponent(id)}`, { headers: { Accept: 'application/json' } });
        if (!response.ok) throw new Error(`status ${response.status}`);
        const [check] = (await response.json()).checks;
        if (check.report_url) { window.location.assign(check.report_url); return; }
        card.querySelector('.stages')?.replaceWith(renderStages(check.stages, check.queued_at));
        const phase = card.querySelector('[data-phase]');
        if (phase) phase.textContent = check.status === 'done' ? 'Done.' : `Now: ${check.phase}.`;
        if (check.status === 'done') { window.location.reload(); return; }
      } catch (err) {
        const phase = card.querySelector('[data-phase]');
        if (phase) phase.textContent = `Progress could not be read (${err.message}); reload the page.`;
        return;
      }
      if (Date.now() - started < POLL_LIMIT_MS) setTimeout(tick, POLL_MS);
    };
    tick();
  }

  // ---- small helpers -------------------------------------------------------------------------
  function setupCopy() {
    for (const button of document.querySelectorAll('[data-copy]')) {
      button.addEventListener('click', async () => {
        const input = document.querySelector(button.dataset.copy);
        if (!input) return;
        try { await navigator.clipboard.writeText(input.value); } catch { input.select(); document.execCommand?.('copy'); }
        const before = button.textContent;
        button.textContent = 'Copied';
        setTimeout(() => { button.textContent = before; }, 1500);
      });
    }
  }

  function setupHeatToggle() {
    for (const toggle of document.querySelectorAll('[data-toggle-heat]')) {
      toggle.addEventListener('change', () => {
        document.getElementById('media-frame')?.classList.toggle('show-heat', toggle.checked);
      });
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    setupDrop();
    setupCheckForm();
    setupLiveCheck();
    setupCopy();
    setupHeatToggle();
  });
})();
