// The analyst page: the queue, a case's detail, claim and resolve. Talks only to the /v1 API.
/* global document, window, fetch, sessionStorage, URLSearchParams */
const $ = (sel) => document.querySelector(sel);
const state = { key: sessionStorage.getItem('fs-api-key') || '', offset: 0, limit: 25, selected: null };
const PAGE = 25;

function say(text, isError) {
  const m = $('#message');
  m.textContent = text;
  m.className = isError ? 'error' : '';
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = data.error || { code: `HTTP_${res.status}`, message: res.statusText };
    throw new Error(`${e.code}: ${e.message}`);
  }
  return data;
}

const money = (minor, currency) => `${(minor / 100).toFixed(2)} ${currency}`;
const age = (ms) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};
function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  tr.appendChild(td);
}

async function loadQueue() {
  if (!state.key) return say('Enter an API key to see the queue.', true);
  const q = new URLSearchParams({
    status: $('#status').value,
    sort: $('#sort').value,
    limit: String(PAGE),
    offset: String(state.offset),
  });
  try {
    const { total, cases } = await api('GET', `/v1/cases?${q}`);
    $('#total').textContent = `${total} case${total === 1 ? '' : 's'}`;
    const tbody = $('#queue tbody');
    tbody.replaceChildren();
    for (const c of cases) {
      const tr = document.createElement('tr');
      tr.dataset.id = c.id;
      if (c.id === state.selected) tr.className = 'selected';
      cell(tr, c.score.toFixed(3));
      cell(tr, c.event_type);
      cell(tr, c.account_id);
      cell(tr, money(c.amount_minor, c.currency));
      cell(tr, age(c.decided_at));
      cell(tr, c.status);
      tr.addEventListener('click', () => select(c.id));
      tbody.appendChild(tr);
    }
  } catch (e) {
    say(e.message, true);
  }
}

async function select(id) {
  state.selected = id;
  try {
    const c = await api('GET', `/v1/cases/${encodeURIComponent(id)}`);
    $('#detail').hidden = false;
    $('#detail').dataset.id = c.id;
    $('#case-title').textContent = `${c.event_type} ${c.id}`;
    const lease = c.lease
      ? ` by ${c.lease.analyst} until ${new Date(c.lease.expires_at).toLocaleTimeString()}`
      : '';
    const res = c.resolution
      ? `: ${c.resolution.label} by ${c.resolution.analyst ?? c.resolution.source}`
      : '';
    $('#case-status').textContent =
      `${c.status}${lease}${res} · score ${c.score.toFixed(4)} · model ${c.decision.model_version} · policy ${c.decision.policy_version}`;
    $('#reasons').replaceChildren(
      ...c.reasons.map((r) => {
        const li = document.createElement('li');
        li.textContent = r;
        return li;
      }),
    );
    const ev = c.event ?? {
      event_id: c.id,
      account_id: c.account_id,
      event_time: c.event_time,
      amount_minor: c.amount_minor,
      currency: c.currency,
    };
    $('#event').replaceChildren(
      ...Object.entries(ev).map(([k, v]) => {
        const tr = document.createElement('tr');
        const th = document.createElement('th');
        th.textContent = k;
        tr.appendChild(th);
        cell(tr, k === 'event_time' ? new Date(v).toISOString() : String(v));
        return tr;
      }),
    );
    $('#activity tbody').replaceChildren(
      ...c.activity.map((d) => {
        const tr = document.createElement('tr');
        cell(tr, new Date(d.event_time).toISOString());
        cell(tr, d.event_type);
        cell(tr, money(d.amount_minor, d.currency));
        cell(tr, d.score.toFixed(3));
        cell(tr, d.outcome);
        return tr;
      }),
    );
    $('#audit').replaceChildren(
      ...c.audit.map((a) => {
        const li = document.createElement('li');
        li.textContent = `${new Date(a.at).toISOString()} ${a.action}${a.actor ? ` by ${a.actor}` : ''}${a.detail ? ` — ${a.detail}` : ''}`;
        return li;
      }),
    );
    $('#claim').disabled = c.status === 'RESOLVED';
    $('#resolve').disabled = c.status === 'RESOLVED';
  } catch (e) {
    say(e.message, true);
  }
}

async function act(what) {
  const id = state.selected;
  if (!id) return;
  try {
    if (what === 'claim') {
      await api('POST', `/v1/cases/${encodeURIComponent(id)}/claim`, {});
      say(`Claimed ${id}.`);
    } else {
      const note = $('#note').value.trim();
      await api('POST', `/v1/cases/${encodeURIComponent(id)}/resolve`, {
        label: $('#label').value,
        ...(note ? { note } : {}),
      });
      say(`Resolved ${id} as ${$('#label').value}; the label is on its topic.`);
      $('#note').value = '';
    }
  } catch (e) {
    say(e.message, true);
  }
  await select(id);
  await loadQueue();
}

$('#key').value = state.key;
$('#key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.key = $('#key').value.trim();
  sessionStorage.setItem('fs-api-key', state.key);
  say('');
  void loadQueue();
});
$('#status').addEventListener('change', () => ((state.offset = 0), void loadQueue()));
$('#sort').addEventListener('change', () => ((state.offset = 0), void loadQueue()));
$('#prev').addEventListener(
  'click',
  () => ((state.offset = Math.max(0, state.offset - PAGE)), void loadQueue()),
);
$('#next').addEventListener('click', () => ((state.offset += PAGE), void loadQueue()));
$('#claim').addEventListener('click', () => void act('claim'));
$('#resolve').addEventListener('click', () => void act('resolve'));
window.setInterval(() => void loadQueue(), 2000);
void loadQueue();
