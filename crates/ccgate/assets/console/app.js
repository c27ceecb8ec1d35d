// CCGate console: the admin console (overview, tenants, request log) and the tenant portal, in one small script
// with no dependencies. Every value from the gateway (tenant names, model names, error texts) goes into the page
// as text (textContent / createTextNode), never as markup, and the CSP allows no inline script or style.
//
// Admin: POST /api/admin/login gives an HttpOnly session cookie and a CSRF token, sent as X-CSRF-Token on every
// change. Tenant: the key is kept in sessionStorage (this tab only) and sent as x-api-key.
(function () {
  'use strict';

  var ASSETS = '/console-assets/';
  var LANGS = ['en', 'zh-CN'];
  var KEY_STORE = 'ccgate.tenantKey';
  var LANG_STORE = 'ccgate.lang';
  var PALETTE = ['#c9623f', '#3b82c4', '#2e9d6a', '#b5479b', '#d6961b', '#6b6fd1', '#1f9aa8', '#8a8f98', '#a05a2c'];
  var ADMIN_VIEWS = ['overview', 'tenants', 'requests'];

  var S = { mode: null, csrf: null, user: null, key: null, lang: 'en', cat: {}, timer: null, view: null, seq: 0 };

  // ---- DOM: every string goes in as text ----
  var SVGNS = 'http://www.w3.org/2000/svg';
  function $(id) { return document.getElementById(id); }
  function build(node, attrs, kids) {
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') node.textContent = String(v);
      else if (k.slice(0, 2) === 'on') node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    });
    (kids || []).forEach(function add(c) {
      if (c === null || c === undefined || c === false) return;
      if (Array.isArray(c)) { c.forEach(add); return; }
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    });
    return node;
  }
  function el(tag, attrs) { return build(document.createElement(tag), attrs, [].slice.call(arguments, 2)); }
  function svg(tag, attrs) { return build(document.createElementNS(SVGNS, tag), attrs, [].slice.call(arguments, 2)); }
  function fill(node) {
    if (typeof node === 'string') node = $(node);
    node.replaceChildren.apply(node, [].slice.call(arguments, 1).flat(Infinity).filter(function (x) { return x != null && x !== false; }));
    return node;
  }

  // ---- i18n: one catalogue per language in /console-assets/i18n/ ----
  function t(key, vars) {
    var s = Object.prototype.hasOwnProperty.call(S.cat, key) ? S.cat[key] : key;
    return String(s).replace(/\{(\w+)\}/g, function (m, k) { return vars && vars[k] !== undefined ? String(vars[k]) : m; });
  }
  function pickLang() {
    var saved = store(localStorage, 'get', LANG_STORE);
    if (LANGS.indexOf(saved) >= 0) return saved;
    var nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    return /^zh\b/i.test(nav) ? 'zh-CN' : 'en';
  }
  function loadLang(lang) {
    return fetch(ASSETS + 'i18n/' + lang + '.json', { cache: 'no-cache' })
      .then(function (r) { if (!r.ok) throw new Error('catalogue ' + lang + ': ' + r.status); return r.json(); })
      .then(function (cat) {
        S.lang = lang; S.cat = cat;
        document.documentElement.lang = lang;
        document.title = t('app.title');
        document.querySelectorAll('[data-i18n]').forEach(function (n) { n.textContent = t(n.getAttribute('data-i18n')); });
        $('lang').value = lang;
        $('tab-tenant').parentNode.setAttribute('aria-label', t('login.as'));
      });
  }
  function store(area, op, k, v) {
    try {
      if (op === 'get') return area.getItem(k);
      if (op === 'set') area.setItem(k, v); else area.removeItem(k);
    } catch (e) { /* storage disabled: the page still works for this visit */ }
    return null;
  }

  // ---- formatting ----
  function nf(opts) { return new Intl.NumberFormat(S.lang, opts); }
  function num(n) { return n === null || n === undefined || n === '' ? '—' : nf().format(Number(n) || 0); }
  function compact(n) { return n === null || n === undefined ? '—' : nf({ notation: 'compact', maximumFractionDigits: 1 }).format(Number(n) || 0); }
  function usd(x) {
    if (x === null || x === undefined) return '—';
    x = Number(x) || 0;
    var d = x !== 0 && Math.abs(x) < 0.01 ? 4 : 2;
    return (x < 0 ? '-$' : '$') + Math.abs(x).toFixed(d);
  }
  function pct(x) { return x === null || x === undefined ? '—' : nf({ style: 'percent', maximumFractionDigits: 1 }).format(Number(x) || 0); }
  function ms(x) { return x === null || x === undefined ? '—' : nf({ maximumFractionDigits: 0 }).format(x) + ' ms'; }
  function when(iso) {
    if (!iso) return '—';
    var d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toLocaleString(S.lang, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  /** A request's time: the year left out, which the log's dates rarely need. */
  function stamp(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toLocaleString(S.lang, { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  function day(d) {
    var p = function (n) { return String(n).padStart(2, '0'); };
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate());
  }
  /** The day `n` days before today, as YYYY-MM-DD in the gateway's time zone (server.timezone, which the usage API
   *  reads such days in) once it is known, else the browser's. */
  function daysAgo(n) {
    var today = new Date();
    if (S.tz) {
      try {
        var p = new Intl.DateTimeFormat('en-CA', { timeZone: S.tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(today).split('-');
        return new Date(Date.UTC(+p[0], +p[1] - 1, +p[2] - n)).toISOString().slice(0, 10);
      } catch (e) { /* an IANA name this browser does not know: its own day */ }
    }
    today.setDate(today.getDate() - n);
    return day(today);
  }
  /** Learns the gateway's time zone (from any usage answer) before days are computed. */
  function knowTz(usageUrl) {
    if (S.tz) return Promise.resolve();
    return api('GET', usageUrl + qs({ from: daysAgo(0), to: daysAgo(0), interval: 'day' }))
      .then(function (u) { S.tz = (u && u.timezone) || null; }, function (err) { if (!S.mode) throw err; });
  }
  function tokensOf(x) {
    x = x || {};
    return (x.inputTokens || 0) + (x.outputTokens || 0) + (x.cacheWriteTokens || 0) + (x.cacheReadTokens || 0);
  }
  function qs(params) {
    var u = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k] !== '' && params[k] !== null && params[k] !== undefined) u.set(k, params[k]); });
    var s = u.toString();
    return s ? '?' + s : '';
  }

  // ---- requests to the gateway ----
  function ApiError(status, data, fallback) {
    var e = (data && data.error) || {};
    this.status = status;
    this.type = e.type || e.code || null;
    this.field = e.field || null;
    this.message = e.message || (typeof data === 'string' && data.trim()) || fallback || ('HTTP ' + status);
  }
  function api(method, path, body) {
    var headers = {};
    if (S.mode === 'tenant' && S.key) headers['x-api-key'] = S.key;
    if (S.mode === 'admin' && method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(path, {
      method: method, headers: headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      var ct = r.headers.get('content-type') || '';
      var parse = r.status === 204 ? Promise.resolve(null)
        : ct.indexOf('json') >= 0 ? r.json().catch(function () { return null; }) : r.text();
      return parse.then(function (data) {
        if (r.ok) return data;
        var err = new ApiError(r.status, data, r.statusText);
        err.retryAfter = r.headers.get('retry-after');
        // A session that ended (expired, logged out elsewhere, key rotated) goes back to the login card.
        if (r.status === 401 && S.mode && path.indexOf('/login') < 0) sessionEnded(err);
        throw err;
      });
    });
  }

  // ---- login and logout ----
  function selectTab(which) {
    ['tenant', 'admin'].forEach(function (w) {
      var on = w === which;
      $('tab-' + w).setAttribute('aria-selected', String(on));
      $('tab-' + w).tabIndex = on ? 0 : -1;
      $('panel-' + w).hidden = !on;
    });
  }
  function loginError(msg) { var e = $('login-error'); e.textContent = msg; e.hidden = !msg; }
  function showLogin(tab) {
    stopTimer();
    S.mode = null; S.csrf = null; S.key = null; S.view = null;
    fill('view'); $('view').hidden = true;
    $('nav').hidden = true; $('who').hidden = true; $('logout').hidden = true; $('banner').hidden = true;
    if (tab) selectTab(tab);
    $('login').hidden = false;
  }
  function sessionEnded(err) {
    var wasTenant = S.mode === 'tenant';
    if (wasTenant) store(sessionStorage, 'del', KEY_STORE);
    showLogin(wasTenant ? 'tenant' : 'admin');
    loginError(wasTenant ? tenantLoginMessage(err) : t('login.sessionEnded'));
  }
  function tenantLoginMessage(err) {
    if (err.status === 429) return t('login.throttled', { s: err.retryAfter || '60' });
    if (err.status === 401 && /expir/i.test(err.message)) return err.message;
    if (err.status === 401) return t('login.badKey');
    return err.message;
  }
  function busy(btn, on) { if (btn) btn.disabled = on; }

  function adminLogin(e) {
    e.preventDefault();
    var user = $('admin-user').value.trim(), pass = $('admin-pass').value, btn = e.target.querySelector('button[type=submit]');
    if (!user || !pass) { loginError(t('login.needUserPass')); (user ? $('admin-pass') : $('admin-user')).focus(); return; }
    loginError(''); busy(btn, true);
    api('POST', '/api/admin/login', { username: user, password: pass }).then(function (s) {
      $('admin-pass').value = '';
      startAdmin(s);
    }, function (err) {
      if (err.status === 401) loginError(t('login.badPassword'));
      else if (err.status === 429) loginError(t('login.throttled', { s: err.retryAfter || '60' }));
      else if (err.status === 403) loginError(t('login.refused', { message: err.message }));
      else loginError(err.message);
    }).finally(function () { busy(btn, false); });
  }
  function tenantLogin(e) {
    e.preventDefault();
    var key = $('api-key').value.trim(), btn = e.target.querySelector('button[type=submit]');
    if (!key) { loginError(t('login.needKey')); $('api-key').focus(); return; }
    loginError(''); busy(btn, true);
    tryTenant(key).finally(function () { busy(btn, false); });
  }
  function tryTenant(key) {
    S.mode = null;
    return fetch('/api/tenant/status', { headers: { 'x-api-key': key }, cache: 'no-store', credentials: 'omit' })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (data) {
          if (!r.ok) { var err = new ApiError(r.status, data); err.retryAfter = r.headers.get('retry-after'); throw err; }
          return data;
        });
      })
      .then(function (status) {
        $('api-key').value = '';
        store(sessionStorage, 'set', KEY_STORE, key);
        startTenant(key, status);
      }, function (err) {
        store(sessionStorage, 'del', KEY_STORE);
        showLogin('tenant');
        loginError(tenantLoginMessage(err));
      });
  }
  function logout() {
    var was = S.mode;
    var done = function () { showLogin(was === 'tenant' ? 'tenant' : 'admin'); loginError(''); };
    if (was === 'tenant') { store(sessionStorage, 'del', KEY_STORE); done(); return; }
    api('POST', '/api/admin/logout').catch(function () { /* the cookie is gone either way once it expires */ }).then(done);
  }

  function whoami(text) { var w = $('who'); w.textContent = text; w.title = text; w.hidden = false; $('logout').hidden = false; }
  function startAdmin(session) {
    S.mode = 'admin'; S.csrf = session.csrfToken; S.user = session.username; S.tz = null;
    $('login').hidden = true; $('nav').hidden = false; $('view').hidden = false;
    whoami(t('who.admin', { user: session.username || 'admin' }));
    if (ADMIN_VIEWS.indexOf(location.hash.slice(1)) < 0 && !trustTarget()) history.replaceState(null, '', '#overview');
    route();
  }
  function startTenant(key, status) {
    S.mode = 'tenant'; S.key = key;
    var tn = status.tenant || {};
    S.tenant = tn;
    S.tz = status.timezone || null;
    $('login').hidden = true; $('nav').hidden = true; $('view').hidden = false;
    whoami(t('who.tenant', { name: tn.name && tn.name !== tn.id ? tn.name + ' (' + tn.id + ')' : String(tn.id || '') }));
    route(status);
  }

  // ---- views ----
  function route(preloaded) {
    stopTimer();
    if (S.mode === 'admin') {
      var v = location.hash.slice(1), upstream = trustTarget();
      if (upstream) v = 'trust';
      else if (ADMIN_VIEWS.indexOf(v) < 0) v = 'overview';
      S.view = v;
      // The scorecard belongs to the overview's upstream table.
      var navView = v === 'trust' ? 'overview' : v;
      document.querySelectorAll('#nav a').forEach(function (a) {
        if (a.getAttribute('data-view') === navView) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
      });
      if (upstream) trustView(upstream);
      else ({ overview: overviewView, tenants: tenantsView, requests: requestsView })[v]();
    } else if (S.mode === 'tenant') {
      S.view = 'portal';
      portalView(preloaded);
    }
  }
  /** The upstream of a `#trust/<id>` address (its scorecard), or null. */
  function trustTarget() {
    var m = /^#trust\/(.+)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (e) { return null; }
  }
  function stopTimer() { if (S.timer) { clearInterval(S.timer); S.timer = null; } }
  /** A section whose content is filled by `load`; `data-state` says loading / ready / error (tests wait on it). */
  function card(id, title, tools) {
    var body = el('div', { class: 'body', id: id + '-body' });
    var sec = el('section', { class: 'card', id: id, 'data-state': 'loading', 'aria-labelledby': id + '-title' },
      el('div', { class: 'card-head' }, el('h2', { id: id + '-title', text: title }), tools || null), body);
    sec.body = body;
    return sec;
  }
  function settle(sec, promise) {
    var seq = S.seq;
    sec.setAttribute('data-state', 'loading');
    return Promise.resolve(promise).then(function () {
      if (seq === S.seq) sec.setAttribute('data-state', 'ready');
    }, function (err) {
      if (seq !== S.seq || !S.mode) return;
      sec.setAttribute('data-state', 'error');
      fill(sec.body, el('div', { class: 'msg error', role: 'alert', text: t('error.load', { message: err.message }) }));
    });
  }
  function newView() { S.seq++; return fill('view'); }
  function stat(label, value, sub, id) {
    return el('div', { class: 'stat', id: id || null }, el('div', { class: 'k', text: label }), el('div', { class: 'v', text: value }),
      sub ? el('div', { class: 's', text: sub }) : null);
  }
  function statSub(tt) {
    if (!tt) return t('stat.unavailable');
    return t('stat.sub', { requests: num(tt.requests), tokens: compact(tokensOf(tt)), errors: num(tt.errors) });
  }
  function table(cols, rows, caption) {
    return el('div', { class: 'scroll' }, el('table', null,
      caption ? el('caption', { class: 'sr', text: caption }) : null,
      el('thead', null, el('tr', null, cols.map(function (c) { return el('th', { scope: 'col', class: c.l ? 'l' : null, text: c.label }); }))),
      el('tbody', null, rows)));
  }
  function badge(text, cls) { return el('span', { class: 'badge ' + (cls || ''), text: text }); }
  function bar(used, max) {
    var frac = max > 0 ? Math.min(1, Math.max(0, used / max)) : 0;
    var i = el('i');
    i.style.width = (frac * 100).toFixed(1) + '%';
    return el('div', { class: 'bar' + (frac >= 1 ? ' bad' : frac >= 0.8 ? ' warn' : ''), role: 'meter', 'aria-valuemin': 0,
      'aria-valuemax': max, 'aria-valuenow': used }, i);
  }

  // Limits: a generic list {name, kind, max_usd/used_usd/remaining_usd or max/used/remaining, resets_at, scope?},
  // so kinds added later still render.
  function limitName(l) {
    var key = 'limit.' + l.name, hours = /^rolling (\d+)h$/.exec(String(l.name));
    var name = hours ? t('limit.rollingHours', { h: hours[1] }) : t(key) === key ? String(l.name) : t(key);
    // A scope such as {"model": "*opus*"}: the limit holds for those models only.
    var scope = l.scope && typeof l.scope === 'object'
      ? Object.keys(l.scope).map(function (k) { return t('limit.scope.' + k) === 'limit.scope.' + k ? k + ' ' + l.scope[k] : t('limit.scope.' + k, { v: l.scope[k] }); }).join(', ')
      : l.scope;
    return scope ? name + ' · ' + scope : name;
  }
  function resetsText(l) {
    if (l.resets_at) return /^\d{4}-/.test(l.resets_at) ? t('limit.resets', { at: when(l.resets_at) }) : String(l.resets_at);
    return l.name === 'total' ? t('limit.never') : '';
  }
  function limitBlock(l) {
    var name = limitName(l), sub = [], head, meter = null;
    if (l.kind === 'usd') {
      head = usd(l.used_usd) + ' / ' + usd(l.max_usd);
      meter = bar(l.used_usd, l.max_usd);
      sub.push(t('limit.remaining', { v: usd(l.remaining_usd) }));
    } else if (l.used !== undefined && l.used !== null && l.max !== undefined) {
      head = num(l.used) + ' / ' + num(l.max);
      meter = bar(l.used, l.max);
      if (l.remaining !== undefined) sub.push(t('limit.remaining', { v: num(l.remaining) }));
    } else {
      head = t('limit.max', { v: typeof l.max === 'number' ? num(l.max) : String(l.max) });
    }
    var r = resetsText(l);
    if (r) sub.push(r);
    return el('div', { class: 'limit' }, el('div', { class: 'row' }, el('span', { class: 'name', text: name }), el('span', { text: head })),
      meter, sub.length ? el('div', { class: 'sub', text: sub.join(' · ') }) : null);
  }
  function limitsList(limits) {
    if (!limits || !limits.length) return el('div', { class: 'empty', text: t('limit.none') });
    return el('div', { class: 'limits' }, limits.map(limitBlock));
  }
  /** A tenant's limits from the admin API: `limitStatus` (every limit with max, used, remaining and reset time, as
   *  the tenant's own status shows them), or else the tenants.json shape {daily: {maxUSD}, rpm, …} with today's
   *  and this month's spend. */
  function tenantLimits(tn) {
    if (Array.isArray(tn.limitStatus)) return tn.limitStatus;
    var u = tn.usage || {}, used = { daily: (u.today || {}).costUSD, monthly: (u.month || {}).costUSD };
    return Object.keys(tn.limits || {}).map(function (name) {
      var v = tn.limits[name];
      if (v && typeof v === 'object' && v.maxUSD !== undefined) {
        return used[name] !== undefined
          ? { name: name, kind: 'usd', max_usd: v.maxUSD, used_usd: used[name], remaining_usd: Math.max(0, v.maxUSD - used[name]) }
          : { name: name, kind: 'usd_max', max: '$' + v.maxUSD };
      }
      return { name: name, kind: 'count', max: typeof v === 'object' ? JSON.stringify(v) : v };
    });
  }
  function miniLimits(tn) {
    var ls = tenantLimits(tn);
    if (!ls.length) return el('span', { class: 'muted', text: t('limit.noneShort') });
    return ls.map(function (l) {
      if (l.kind === 'usd') {
        return el('div', { class: 'mini' }, el('div', { class: 't', text: limitName(l) + ': ' + usd(l.used_usd) + ' / ' + usd(l.max_usd) }), bar(l.used_usd, l.max_usd));
      }
      var max = typeof l.max === 'number' ? num(l.max) : String(l.max);
      return el('div', { class: 'mini' }, el('div', { class: 't', text: limitName(l) + ': ' + (l.used !== undefined && l.used !== null ? num(l.used) + ' / ' : '') + max }));
    });
  }

  // ---- chart: stacked bars per bucket, one colour per group ----
  /** A bucket's label in the gateway's time zone, as the API writes it ("2026-12-07T13:00:00+08:00"). */
  function bucketLabel(b, interval) {
    b = String(b);
    return interval === 'hour' && b.length >= 13 ? b.slice(11, 13) + ':00' : b.slice(5, 10);
  }
  function chart(usage, metric, width) {
    var buckets = usage.buckets || [], groups = (usage.groups || []).slice();
    var val = metric === 'tokens' ? tokensOf : function (x) { return Number((x || {}).costUSD) || 0; };
    var fmt = metric === 'tokens' ? compact : usd;
    if (!buckets.length) return el('div', { class: 'empty', text: t('chart.empty') });
    groups.sort(function (a, b) { return val(b.totals) - val(a.totals) || String(a.key).localeCompare(String(b.key)); });
    // The biggest eight keep their own colour; the rest are summed as "other".
    var shown = groups.slice(0, 8), rest = groups.slice(8);
    var series = shown.map(function (g) { return { key: String(g.key), series: g.series || [] }; });
    if (rest.length) series.push({ key: t('chart.other'), other: true, series: buckets.map(function (b, i) {
      var s = {};
      rest.forEach(function (g) { var x = at(g.series || [], b, i); ['costUSD', 'inputTokens', 'outputTokens', 'cacheWriteTokens', 'cacheReadTokens'].forEach(function (k) { s[k] = (s[k] || 0) + (Number(x[k]) || 0); }); });
      return s;
    }) });
    function at(list, b, i) {
      var x = list[i];
      if (x && (x.t === undefined || x.t === b)) return x;
      for (var j = 0; j < list.length; j++) if (list[j].t === b) return list[j];
      return {};
    }
    var stacks = buckets.map(function (b, i) { return series.map(function (s) { return val(at(s.series, b, i)); }); });
    var max = Math.max.apply(null, stacks.map(function (st) { return st.reduce(function (a, c) { return a + c; }, 0); }).concat([0]));
    var W = Math.max(300, Math.round(width || 720)), H = 220, L = 58, R = 8, T = 10, B = 24, pw = W - L - R, ph = H - T - B, bw = pw / buckets.length;
    var step = niceStep(max / 4), top = Math.max(step * Math.ceil(max / step), step);
    var g = [];
    for (var v = 0; v <= top + top * 1e-9; v += step) {
      var y = T + ph - (v / top) * ph;
      g.push(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y.toFixed(1), y2: y.toFixed(1) }));
      g.push(svg('text', { class: 'axis', x: L - 6, y: (y + 4).toFixed(1), 'text-anchor': 'end', text: fmt(v) }));
    }
    var labelEvery = Math.max(1, Math.ceil(buckets.length / Math.floor(pw / 48)));
    var w = Math.min(Math.max(0.8, bw * (bw > 6 ? 0.74 : 0.9)), 40);
    buckets.forEach(function (b, i) {
      var x = L + i * bw + (bw - w) / 2, y0 = T + ph;
      stacks[i].forEach(function (value, k) {
        if (!(value > 0)) return;
        var h = Math.max(1, (value / top) * ph);
        y0 -= h;
        g.push(svg('rect', { class: 'seg', 'data-key': series[k].key, x: x.toFixed(1), y: y0.toFixed(1), width: w.toFixed(1), height: h.toFixed(1),
          fill: PALETTE[series[k].other ? PALETTE.length - 1 : k % (PALETTE.length - 1)] },
          svg('title', { text: bucketLabel(b, usage.interval) + ' · ' + series[k].key + ': ' + fmt(value) })));
      });
      if (i % labelEvery === 0) {
        g.push(svg('text', { class: 'axis', x: (L + i * bw + bw / 2).toFixed(1), y: H - 6, 'text-anchor': 'middle', text: bucketLabel(b, usage.interval) }));
      }
    });
    var legend = el('div', { class: 'legend' }, series.map(function (s, k) {
      var sw = el('span', { class: 'sw' });
      sw.style.background = PALETTE[s.other ? PALETTE.length - 1 : k % (PALETTE.length - 1)];
      return el('span', { class: 'key', 'data-key': s.key }, sw, s.key);
    }));
    return [svg('svg', { class: 'chart', viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img',
      'aria-label': t(metric === 'tokens' ? 'chart.tokens' : 'chart.cost') }, g), series.length ? legend : null];
  }
  function niceStep(x) {
    if (!(x > 0)) return 0.01;
    var p = Math.pow(10, Math.floor(Math.log10(x))), f = x / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  /** Buttons that pick one of `options`; calls back with the value. */
  function toggle(label, options, current, onPick) {
    var group = el('div', { class: 'group', role: 'group', 'aria-label': label });
    options.forEach(function (o) {
      group.appendChild(el('button', { type: 'button', class: 'small', 'data-value': o[0], 'aria-pressed': String(o[0] === current), text: o[1],
        onclick: function () {
          group.querySelectorAll('button').forEach(function (b) { b.setAttribute('aria-pressed', String(b === this)); }, this);
          onPick(o[0]);
        } }));
    });
    return group;
  }
  /** The usage chart card: range, interval, metric and (for the admin) grouping, redrawn from `usageUrl`. */
  function chartCard(usageUrl, groupChoices) {
    var st = { range: '7d', interval: 'day', metric: 'cost', groupBy: groupChoices[0] };
    var sec = card('chart', t('chart.title'));
    var tools = el('div', { class: 'toolbar' },
      toggle(t('chart.range'), [['1d', t('range.today')], ['7d', t('range.7d')], ['30d', t('range.30d')]], st.range, function (v) { st.range = v; load(); }),
      toggle(t('chart.interval'), [['hour', t('chart.hourly')], ['day', t('chart.daily')]], st.interval, function (v) { st.interval = v; load(); }),
      toggle(t('chart.metric'), [['cost', t('chart.metricCost')], ['tokens', t('chart.metricTokens')]], st.metric, function (v) { st.metric = v; draw(); }),
      groupChoices.length > 1 ? toggle(t('chart.groupBy'), groupChoices.map(function (g) { return [g, t('group.' + g)]; }), st.groupBy, function (v) { st.groupBy = v; load(); }) : null);
    sec.insertBefore(tools, sec.body);
    tools.classList.add('chart-tools');
    var data = null, drawnWidth = 0;
    function draw() {
      if (!data) return;
      drawnWidth = sec.body.clientWidth;
      fill(sec.body, chart(data, st.metric, drawnWidth), el('div', { class: 'note', text: t('chart.note', { tz: data.timezone || '—', interval: t(data.interval === 'hour' ? 'chart.hourly' : 'chart.daily') }) }));
    }
    function load() {
      return settle(sec, knowTz(usageUrl).then(function () {
        var from = daysAgo(st.range === '1d' ? 0 : st.range === '7d' ? 6 : 29);
        return api('GET', usageUrl + qs({ from: from, to: daysAgo(0), interval: st.interval, groupBy: st.groupBy }));
      }).then(function (u) { data = u; draw(); }));
    }
    // Drawn at the card's width, so its text stays readable on a phone; redrawn when that changes.
    if (window.ResizeObserver) {
      var pending = null;
      new ResizeObserver(function () {
        clearTimeout(pending);
        // Later, not inside the observer's callback: a redraw there would be reported as a resize loop.
        pending = setTimeout(function () { if (Math.abs(sec.body.clientWidth - drawnWidth) > 16) draw(); }, 100);
      }).observe(sec.body);
    }
    sec.load = load;
    return sec;
  }
  /** Today, 7 days, 30 days: three calls of the usage endpoint; the 30-day answer is returned for more use. */
  function periodStats(usageUrl, groupBy, holder, extra) {
    var periods = [['today', 0], ['7d', 6], ['30d', 29]];
    return knowTz(usageUrl).then(function () { return Promise.all(periods.map(function (p) {
      return api('GET', usageUrl + qs({ from: daysAgo(p[1]), to: daysAgo(0), interval: 'day', groupBy: groupBy }))
        .catch(function (err) { if (!S.mode) throw err; return { error: err }; });
    })); }).then(function (answers) {
      var cards = answers.map(function (u, i) {
        var tt = u && !u.error ? u.totals : null;
        return stat(t('range.' + periods[i][0]), tt ? usd(tt.costUSD) : '—', statSub(tt), 'stat-' + periods[i][0]);
      });
      var month = answers[2] && !answers[2].error ? answers[2] : null, mt = month ? month.totals || {} : null;
      cards.push(stat(t('stat.cache'), mt && mt.cacheHitRatio !== undefined ? pct(mt.cacheHitRatio) : '—',
        mt ? t('stat.cacheSub', { saved: usd(mt.cacheSavedUSD) }) : t('stat.unavailable'), 'stat-cache'));
      if (extra) cards = cards.concat(extra);
      fill(holder, cards);
      var failed = answers.filter(function (u) { return u && u.error; })[0];
      if (failed) holder.appendChild(el('div', { class: 'msg warn', role: 'status', text: t('error.usage', { message: failed.error.message }) }));
      return month;
    });
  }

  // ---- admin: overview ----
  function overviewView() {
    var v = newView();
    var stats = el('section', { class: 'stats', id: 'stats', 'aria-label': t('stat.title') });
    var configAlert = el('div', { id: 'config-alert' });
    var spend = card('spend', t('spend.title'));
    var ch = chartCard('/api/admin/usage', ['tenant', 'model']);
    var ups = card('upstreams', t('up.title'), el('small', { class: 'muted', id: 'upstreams-updated' }));
    fill(v, configAlert, stats, ch, spend, ups);
    settle(stats, periodStats('/api/admin/usage', 'tenant', stats));
    ch.load();
    settle(spend, api('GET', '/api/admin/tenants').then(function (r) { renderSpend(spend.body, r.tenants || []); }));
    var live = function () {
      settle(ups, api('GET', '/api/admin/upstreams').then(function (r) {
        renderUpstreams(ups.body, r.upstreams || [], live);
        $('upstreams-updated') && ($('upstreams-updated').textContent = t('up.updated', { at: new Date().toLocaleTimeString(S.lang) }));
      }));
      configHealth(configAlert);
    };
    live();
    S.timer = setInterval(function () { if (S.view === 'overview' && !document.hidden) live(); }, 10000);
  }
  /** A rejected config reload or a degraded ledger, from /health (details when the gateway gives them). */
  function configHealth(holder) {
    fetch('/health', { credentials: 'same-origin', cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (h) {
      var msgs = [];
      if (h.config && h.config.status === 'rejected') {
        msgs.push(t('health.rejected') + (h.config.error ? ': ' + h.config.error : '.'));
      }
      if (h.ledger && h.ledger.status && h.ledger.status !== 'ok') {
        msgs.push(t('health.ledger', { status: h.ledger.status }) + (h.ledger.error ? ': ' + h.ledger.error : ''));
      }
      fill(holder, msgs.map(function (m) { return el('div', { class: 'msg error', role: 'alert', text: m }); }));
    }).catch(function () { /* /health unreachable: the upstream table says so */ });
  }
  function renderSpend(body, tenants) {
    if (!tenants.length) { fill(body, el('div', { class: 'empty', text: t('tenants.none') })); return; }
    var rows = tenants.slice().sort(function (a, b) {
      return ((b.usage || {}).month || {}).costUSD - ((a.usage || {}).month || {}).costUSD || String(a.id).localeCompare(String(b.id));
    }).map(function (tn) {
      var u = tn.usage || {};
      return el('tr', { 'data-id': tn.id },
        el('td', { class: 'l wrap', text: tn.name && tn.name !== tn.id ? tn.name + ' (' + tn.id + ')' : tn.id }),
        el('td', { text: usd((u.today || {}).costUSD) }),
        el('td', { text: usd((u.month || {}).costUSD) }),
        el('td', { text: num((u.month || {}).requests) }),
        el('td', { class: 'l' }, miniLimits(tn)));
    });
    fill(body, table([{ label: t('col.tenant'), l: true }, { label: t('col.today') }, { label: t('col.month') }, { label: t('col.requestsMonth') }, { label: t('col.limits'), l: true }], rows));
  }
  function upstreamBadge(status) {
    var cls = { healthy: 'ok', ok: 'ok', degraded: 'warn', cooling_down: 'warn', ejected: 'warn', unhealthy: 'bad', unavailable: 'bad', disabled: '' }[status];
    var key = 'up.status.' + status;
    return badge(t(key) === key ? String(status || '—').replace(/_/g, ' ') : t(key), cls);
  }
  function renderUpstreams(body, list, refresh) {
    if (!list.length) { fill(body, el('div', { class: 'empty', text: t('up.none') })); return; }
    var rows = list.map(function (u) {
      var h = u.health || {}, o = u.overrides || {};
      var mark = function (v, k) { return String(v === undefined ? '—' : v) + (o[k] !== null && o[k] !== undefined ? ' *' : ''); };
      var rate = h.errorRatePercent !== undefined ? h.errorRatePercent : u.errorRatePercent;
      return el('tr', { 'data-id': u.id },
        el('td', { class: 'l', title: u.id, text: u.name || u.id }),
        el('td', { class: 'l' }, upstreamBadge(h.status || u.status), trustBadges(u)),
        el('td', { class: 'l', text: mark(u.enabled ? t('yes') : t('no'), 'enabled') }),
        el('td', { text: mark(u.weight, 'weight') }),
        el('td', { text: mark(u.priority, 'priority') }),
        el('td', { text: num(h.inFlight !== undefined ? h.inFlight : u.inFlight) }),
        el('td', { text: ms(h.latencyMs) }),
        el('td', { text: ms(h.ttftMs) }),
        el('td', { text: rate === undefined || rate === null ? '—' : num(rate) + '%' }),
        el('td', { class: 'l', text: h.cooldownUntil ? when(h.cooldownUntil) : '—' }),
        upstreamActions(u, refresh));
    });
    fill(body, table(['col.upstream', 'col.status', 'col.enabled', 'col.weight', 'col.priority', 'col.inFlight', 'col.latency', 'col.ttft', 'col.errorRate', 'col.cooldown', 'col.actions']
      .map(function (k, i) { return { label: t(k), l: i < 3 || i >= 9 }; }), rows),
      list.some(function (u) { return Object.keys(u.overrides || {}).some(function (k) { return u.overrides[k] !== null; }); })
        ? el('div', { class: 'note', text: t('up.overrideNote') }) : null);
  }

  /** Runtime overrides (kept in the store, on every instance): switch an upstream off or on, or go back to the
   *  file's values. Weight and priority stay with the admin API. */
  function upstreamActions(u, refresh) {
    var cell = el('td', { class: 'actions' });
    var o = u.overrides || {}, overridden = Object.keys(o).some(function (k) { return o[k] !== null && o[k] !== undefined; });
    var patch = function (body) {
      api('PATCH', '/api/admin/upstreams/' + encodeURIComponent(u.id), body).then(refresh, function (err) {
        fill(cell, el('span', { class: 'msg error', role: 'alert', text: err.message }));
      });
    };
    fill(cell,
      el('a', { class: 'button small', 'data-action': 'trust', href: '#trust/' + encodeURIComponent(u.id), text: t('trust.open') }),
      el('button', { type: 'button', class: 'small', 'data-action': 'toggle', text: u.enabled ? t('up.disable') : t('up.enable'),
        onclick: function () { patch({ enabled: !u.enabled }); } }),
      overridden ? el('button', { type: 'button', class: 'small', 'data-action': 'reset', text: t('up.reset'),
        onclick: function () { patch({ enabled: null, weight: null, priority: null }); } }) : null);
    return cell;
  }

  /** Beside an upstream's status: suspect (an open trust flag, checks in the tooltip) and demoted. */
  function trustBadges(u) {
    var checks = Array.isArray(u.suspect) ? u.suspect : [];
    return [
      checks.length ? [' ', el('span', { class: 'badge bad', 'data-trust': 'suspect', title: checks.map(checkName).join(', '), text: t('trust.suspectBadge') })] : null,
      u.demoted ? [' ', el('span', { class: 'badge bad', 'data-trust': 'demoted', text: t('trust.demoted') })] : null
    ];
  }

  // ---- admin: an upstream's trust scorecard (GET /api/admin/upstreams/{id}/scorecard, docs/trust.md) ----
  function checkName(name) { var k = 'trust.check.' + name; return t(k) === k ? String(name) : t(k); }
  function checkBadge(status) {
    var cls = { ok: 'ok', insufficient_data: '', suspect: 'bad' }[status];
    var k = 'trust.status.' + status;
    return el('span', { class: 'badge ' + (cls || ''), 'data-status': status, text: t(k) === k ? String(status) : t(k) });
  }
  /** Evidence as a key: value list; nested objects as dotted keys, request ids as code. */
  function evidenceList(ev) {
    if (ev === null || ev === undefined || typeof ev !== 'object') return el('div', { class: 'muted', text: ev === undefined || ev === null ? '—' : String(ev) });
    var rows = [];
    (function walk(o, prefix) {
      Object.keys(o).forEach(function (k) {
        var v = o[k], key = prefix ? prefix + '.' + k : k;
        if (k === 'requestIds' && Array.isArray(v)) {
          // Each opens the request log filtered to that request.
          rows.push([key, el('span', { class: 'ids' }, v.map(function (id) {
            return el('a', { href: '#requests', class: 'rid-link', title: t('trust.openRequest'), onclick: function () { S.logRequest = id; } },
              el('code', { class: 'rid', text: id }));
          }))]);
        } else if (v && typeof v === 'object' && !Array.isArray(v)) {
          if (Object.keys(v).length) walk(v, key); else rows.push([key, '—']);
        } else {
          rows.push([key, v === null ? '—' : Array.isArray(v) ? v.join(', ') : typeof v === 'number' ? num(v) : String(v)]);
        }
      });
    })(ev, '');
    if (!rows.length) return el('div', { class: 'muted', text: t('trust.noEvidence') });
    return el('dl', { class: 'kv' }, rows.map(function (r) { return [el('dt', { text: r[0] }), el('dd', null, r[1])]; }));
  }
  function trustView(id) {
    var v = newView();
    var head = card('trust-head', t('trust.title', { id: id }),
      el('div', { class: 'group' },
        el('a', { class: 'button small', href: '#overview', text: t('trust.back') }),
        el('button', { type: 'button', class: 'small', id: 'trust-refresh', text: t('trust.refresh'), onclick: load })));
    var flags = card('trust-flags', t('trust.flags'));
    var models = card('trust-models', t('trust.models'));
    var canary = card('trust-canary', t('trust.canary'));
    var balance = card('trust-balance', t('trust.balance'));
    fill(v, head, flags, models, canary, balance);
    function load() {
      var p = api('GET', '/api/admin/upstreams/' + encodeURIComponent(id) + '/scorecard');
      var sections = [head, flags, models, canary, balance];
      var rendered = p.then(function (c) {
        renderTrustHead(head.body, c);
        renderFlags(flags.body, c, id, load);
        renderModels(models.body, c.models || []);
        renderCanary(canary.body, c.canary);
        renderBalance(balance.body, c.balance);
      });
      sections.forEach(function (sec) { settle(sec, rendered); });
    }
    // Not refreshed on a timer, so that the evidence an admin unfolded stays open: the button reloads.
    load();
  }
  function renderTrustHead(body, c) {
    var st = c.demoted ? badge(t('trust.demoted'), 'bad') : badge(t('trust.notDemoted'), 'ok');
    st.id = 'trust-demoted';
    fill(body, el('dl', { class: 'kv' },
      el('dt', { text: t('trust.demotedLabel') }), el('dd', null, st),
      el('dt', { text: t('trust.onSuspect') }), el('dd', { text: t('trust.onSuspect.' + c.onSuspect) }),
      el('dt', { text: t('trust.reference') }), el('dd', { text: c.reference ? t('yes') : t('no') }),
      el('dt', { text: t('trust.checksSince') }), el('dd', { text: when(c.checksSince) })),
      el('div', { class: 'note', text: t('trust.note') }));
  }
  function renderFlags(body, c, id, reload) {
    var all = c.flags || [], open = all.filter(function (f) { return f.open; }), closed = all.filter(function (f) { return !f.open; });
    var actions = el('div', { class: 'form-actions' });
    var clear = el('button', { type: 'button', class: 'danger', id: 'trust-clear', 'data-action': 'clear', text: t('trust.clear'),
      onclick: function () {
        clear.disabled = true;
        api('POST', '/api/admin/upstreams/' + encodeURIComponent(id) + '/trust/clear', {}).then(reload, function (err) {
          fill(actions, el('span', { class: 'msg error', role: 'alert', text: err.message }));
        });
      } });
    if (open.length || c.demoted) actions.appendChild(clear);
    function flagBlock(f) {
      return el('div', { class: 'flag' + (f.open ? ' open' : ''), 'data-check': f.check, 'data-open': String(!!f.open) },
        el('div', { class: 'flag-head' },
          el('b', { text: checkName(f.check) }), ' ',
          f.open ? badge(t('trust.flagOpen'), 'bad') : badge(t('trust.flagCleared'), ''), ' ',
          el('span', { class: 'muted', text: (f.model ? f.model + ' · ' : '') + t('trust.raised', { at: when(f.raisedAt) }) +
            (f.clearedAt ? ' · ' + t('trust.cleared', { at: when(f.clearedAt) }) : '') })),
        evidenceList(f.evidence),
        f.open && f.evidence && Array.isArray(f.evidence.requestIds) && f.evidence.requestIds.length
          ? el('div', { class: 'note', text: t('trust.requestIdsNote') }) : null);
    }
    fill(body,
      open.length ? el('div', { id: 'trust-open' }, open.map(flagBlock)) : el('div', { class: 'empty', id: 'trust-no-flags', text: t('trust.noFlags') }),
      actions,
      closed.length ? el('details', { class: 'history' }, el('summary', { text: t('trust.history', { n: closed.length }) }), closed.map(flagBlock)) : null);
  }
  function renderModels(body, models) {
    if (!models.length) { fill(body, el('div', { class: 'empty', text: t('trust.noTraffic') })); return; }
    var windows = ['1h', '24h', '7d'];
    fill(body, models.map(function (m) {
      var w = m.windows || {};
      var pair = function (x, fmt) { x = x || {}; return fmt(x.p50) + ' / ' + fmt(x.p95); };
      var pctOf = function (x) { return x === null || x === undefined ? '—' : pct(Number(x) / 100); };
      var msOf = function (x) { return x === null || x === undefined ? '—' : typeof x === 'number' ? ms(x) : String(x) + ' ms'; };
      var tps = function (x) { return x === null || x === undefined ? '—' : typeof x === 'number' ? num(x) : String(x); };
      var errs = function (e) { var k = Object.keys(e || {}); return k.length ? k.map(function (c) { return c + ': ' + num(e[c]); }).join(', ') : '—'; };
      var rows = [
        ['trust.fig.requests', function (x) { return num(x.requests); }],
        ['trust.fig.success', function (x) { return pctOf(x.successPercent); }],
        ['trust.fig.errors', function (x) { return errs(x.errors); }],
        ['trust.fig.ttft', function (x) { return pair(x.ttftMs, msOf); }],
        ['trust.fig.tps', function (x) { return pair(x.outputTokensPerSecond, tps); }],
        ['trust.fig.cacheHit', function (x) { var c = x.cache || {}; return pctOf(c.hitPercent) + (c.askedRequests ? ' (' + num(c.hitRequests) + '/' + num(c.askedRequests) + ')' : ''); }],
        ['trust.fig.costMtok', function (x) { return usd((x.cost || {}).perMillionTokensUsd); }],
        ['trust.fig.costRequest', function (x) { return usd((x.cost || {}).perSuccessfulRequestUsd); }]
      ].map(function (r) {
        return el('tr', { 'data-figure': r[0].slice(10) }, el('th', { scope: 'row', class: 'l', text: t(r[0]) }),
          windows.map(function (k) { return el('td', { 'data-window': k, class: r[0] === 'trust.fig.errors' ? 'wrap' : null, text: w[k] ? r[1](w[k]) : '—' }); }));
      });
      var checks = Array.isArray(m.checks) ? m.checks : [];
      return el('div', { class: 'model', 'data-model': m.model },
        el('h3', { text: m.model }),
        table([{ label: t('trust.figure'), l: true }].concat(windows.map(function (k) { return { label: t('trust.window.' + k) }; })), rows),
        el('ul', { class: 'checks' }, checks.map(function (ch) {
          var details = el('details', { open: ch.status === 'suspect' }, el('summary', { text: t('trust.evidence') }), evidenceList(ch.evidence));
          return el('li', { 'data-check': ch.name, 'data-status': ch.status },
            el('div', { class: 'check-head' }, el('b', { text: checkName(ch.name) }), ' ', checkBadge(ch.status)), details);
        })));
    }));
  }
  function renderCanary(body, c) {
    if (!c) { fill(body, el('div', { class: 'empty', text: t('trust.noCanary') })); return; }
    var last = c.last || {}, ref = c.reference || {}, ch = c.check || null;
    fill(body, el('dl', { class: 'kv' },
      el('dt', { text: t('trust.canary.runs') }), el('dd', { text: num(c.runs) }),
      el('dt', { text: t('trust.canary.cost') }), el('dd', { text: usd(c.costUsd) }),
      el('dt', { text: t('trust.canary.status') }), el('dd', null, ch ? checkBadge(ch.status) : '—',
        ch && ch.evidence ? ' ' + t('trust.canary.inARow', { n: num(ch.evidence.disagreeingInARow) }) : ''),
      el('dt', { text: t('trust.canary.last') }), el('dd', { text: c.last ? (last.atMs ? when(new Date(last.atMs).toISOString()) : '—') + ' · ' + (last.error
        ? t('trust.canary.error', { error: last.error })
        : t('trust.canary.answer', { model: last.answeredModel || '—', input: num(last.inputTokens), output: num(last.outputTokens) })) : '—' }),
      el('dt', { text: t('trust.canary.reference') }), el('dd', { text: c.reference ? t('trust.canary.answer', { model: ref.answeredModel || '—', input: num(ref.inputTokens), output: num(ref.outputTokens) }) : '—' })));
  }
  function renderBalance(body, b) {
    if (!b) { fill(body, el('div', { class: 'empty', text: t('trust.noBalance') })); return; }
    fill(body, el('dl', { class: 'kv' },
      el('dt', { text: t('trust.balance.left') }), el('dd', null, usd(b.balanceUsd), ' ', b.low ? badge(t('trust.balance.low'), 'bad') : null),
      el('dt', { text: t('trust.balance.burn') }), el('dd', { text: usd(b.burnUsdPerDay) }),
      el('dt', { text: t('trust.balance.days') }), el('dd', { text: b.daysLeft === null || b.daysLeft === undefined ? '—' : nf({ maximumFractionDigits: 1 }).format(b.daysLeft) }),
      el('dt', { text: t('trust.balance.at') }), el('dd', { text: b.atMs ? when(new Date(b.atMs).toISOString()) : '—' }),
      b.error ? [el('dt', { text: t('trust.balance.error') }), el('dd', { class: 'bad-text', text: b.error })] : null));
  }

  // ---- admin: tenants ----
  function tenantsView() {
    var v = newView();
    var keyPanel = el('div', { id: 'key-panel' });
    // Folded until wanted: on a phone the list comes first.
    var create = el('details', { class: 'card', id: 'create' }, el('summary', { text: t('tenants.create') }));
    var list = card('tenants', t('tenants.title'));
    fill(v, keyPanel, create, list);
    create.appendChild(tenantForm(null, function (tn) { create.open = false; showKey(keyPanel, tn, 'created'); reload(); }));
    function reload() { return settle(list, api('GET', '/api/admin/tenants').then(function (r) { renderTenants(list.body, r.tenants || [], keyPanel, reload); })); }
    reload();
  }
  var LIMIT_FIELDS = [['daily', 'usd'], ['weekly', 'usd'], ['monthly', 'usd'], ['total', 'usd'], ['rpm', 'int'], ['tpm', 'int'],
    ['maxConcurrent', 'int'], ['maxOutputTokens', 'int']];
  /** The create form (tenant null) or the edit form of a console tenant. Errors from the gateway name a field;
   *  the form marks it and changes nothing. */
  function tenantForm(tn, done, cancel) {
    var editing = !!tn, limits = (tn && !Array.isArray(tn.limits) && tn.limits) || {};
    var inputs = {}, errs = {};
    function field(name, label, input, hint, wide) {
      input.id = (editing ? 'edit-' : 'new-') + name.replace(/\./g, '-');
      inputs[name] = input;
      errs[name] = el('div', { class: 'err', hidden: true, role: 'alert' });
      return el('div', { class: 'field' + (wide ? ' wide' : '') }, el('label', { for: input.id, text: label }), input,
        hint ? el('div', { class: 'note', text: hint }) : null, errs[name]);
    }
    var other = {};
    Object.keys(limits).forEach(function (k) { if (!LIMIT_FIELDS.some(function (f) { return f[0] === k; })) other[k] = limits[k]; });
    var expires = '';
    if (tn && tn.expiresAt) { var d = new Date(tn.expiresAt); if (!isNaN(d)) expires = day(d) + 'T' + String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0'); }
    // The attribute, not only the property: form.reset() after a create goes back to it.
    var enabled = el('input', { type: 'checkbox', id: (editing ? 'edit' : 'new') + '-enabled', checked: tn ? tn.enabled !== false : true });
    var parts = [
      field('name', t('form.name'), el('input', { type: 'text', required: true, maxlength: 100, value: tn ? tn.name || '' : '' })),
      editing ? null : field('id', t('form.id'), el('input', { type: 'text', maxlength: 64, spellcheck: 'false', autocapitalize: 'off' }), t('form.idHint')),
      field('allowedModels', t('form.models'), el('textarea', { spellcheck: 'false', rows: 2 }, tn ? (tn.allowedModels || []).join('\n') : ''), t('form.modelsHint'), true)
    ];
    LIMIT_FIELDS.forEach(function (f) {
      var cur = limits[f[0]], val = cur === undefined || cur === null ? '' : f[1] === 'usd' ? cur.maxUSD : cur;
      parts.push(field('limits.' + f[0], t('form.limit.' + f[0]), el('input', { type: 'number', min: 0, step: f[1] === 'usd' ? 'any' : 1, value: val === undefined ? '' : val, inputmode: 'decimal' })));
    });
    parts.push(field('limits', t('form.otherLimits'), el('textarea', { spellcheck: 'false', rows: 2 }, Object.keys(other).length ? JSON.stringify(other) : ''), t('form.otherLimitsHint'), true));
    parts.push(field('expiresAt', t('form.expires'), el('input', { type: 'datetime-local', value: expires }), t('form.expiresHint')));
    parts.push(el('div', { class: 'field' }, el('label', { class: 'check' }, enabled, t('form.enabled'))));
    var formError = el('div', { class: 'msg error wide', role: 'alert', hidden: true });
    var submit = el('button', { type: 'submit', class: 'primary', text: editing ? t('form.save') : t('form.createButton') });
    var form = el('form', { class: 'grid-form', novalidate: true, id: editing ? 'edit-form' : 'create-form' }, formError, parts,
      el('div', { class: 'form-actions wide' }, submit, cancel ? el('button', { type: 'button', text: t('form.cancel'), onclick: cancel }) : null));
    function clearErrors() {
      formError.hidden = true;
      Object.keys(errs).forEach(function (k) { errs[k].hidden = true; inputs[k].removeAttribute('aria-invalid'); });
    }
    function showError(err) {
      clearErrors();
      // The field the gateway names, or the nearest input above it ("limits.daily.maxUSD" → the daily input).
      var f = err.field, target = null;
      while (f && !target) { if (inputs[f]) target = f; else f = f.replace(/(\.[^.]*|\[\d+\])$/, '') === f ? null : f.replace(/(\.[^.]*|\[\d+\])$/, ''); }
      formError.textContent = err.field ? t('form.errorField', { field: err.field, message: err.message }) : err.message;
      formError.hidden = false;
      if (target) { errs[target].textContent = err.message; errs[target].hidden = false; inputs[target].setAttribute('aria-invalid', 'true'); inputs[target].focus(); }
    }
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = {};
      var name = inputs.name.value.trim();
      if (name || !editing) body.name = name;
      if (!editing && inputs.id.value.trim()) body.id = inputs.id.value.trim();
      var models = inputs.allowedModels.value.split(/[\s,]+/).filter(Boolean);
      body.allowedModels = models.length ? models : ['*'];
      var lim = {};
      var extra = inputs.limits.value.trim();
      if (extra) {
        try { lim = JSON.parse(extra); } catch (x) { showError({ field: 'limits', message: t('form.badJson') }); return; }
        if (!lim || typeof lim !== 'object' || Array.isArray(lim)) { showError({ field: 'limits', message: t('form.badJson') }); return; }
      }
      for (var i = 0; i < LIMIT_FIELDS.length; i++) {
        var f = LIMIT_FIELDS[i], raw = inputs['limits.' + f[0]].value.trim();
        if (raw === '') continue;
        var n = Number(raw);
        if (!isFinite(n)) { showError({ field: 'limits.' + f[0], message: t('form.badNumber') }); return; }
        lim[f[0]] = f[1] === 'usd' ? { maxUSD: n } : n;
      }
      body.limits = lim;
      var exp = inputs.expiresAt.value;
      if (exp) { var d = new Date(exp); if (isNaN(d)) { showError({ field: 'expiresAt', message: t('form.badDate') }); return; } body.expiresAt = d.toISOString(); }
      else if (editing) body.expiresAt = null;
      body.enabled = enabled.checked;
      submit.disabled = true;
      var req = editing ? api('PATCH', '/api/admin/tenants/' + encodeURIComponent(tn.id), body) : api('POST', '/api/admin/tenants', body);
      req.then(function (r) { clearErrors(); if (!editing) form.reset(); done(r); }, showError)
        .finally(function () { submit.disabled = false; });
    });
    return form;
  }
  function snippet(title, text, id) {
    var pre = el('pre', { class: 'code', id: id || null, text: text });
    return el('div', { class: 'snippet' }, el('div', { class: 'head' }, el('b', { text: title }), copyButton(function () { return text; }, pre)), pre);
  }
  function copyButton(getText, selectNode) {
    var b = el('button', { type: 'button', class: 'small copy', text: t('copy.copy') });
    b.addEventListener('click', function () {
      var ok = function () { b.textContent = t('copy.copied'); setTimeout(function () { b.textContent = t('copy.copy'); }, 1500); };
      var manual = function () {
        // No clipboard (plain HTTP on another host): select the text for Ctrl+C.
        if (selectNode) { var r = document.createRange(); r.selectNodeContents(selectNode); var s = getSelection(); s.removeAllRanges(); s.addRange(r); }
        b.textContent = t('copy.select');
      };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(getText()).then(ok, manual); else manual();
    });
    return b;
  }
  function origin() { return location.origin; }
  function claudeEnv(key) {
    return 'export ANTHROPIC_BASE_URL=' + origin() + '/anthropic\nexport ANTHROPIC_AUTH_TOKEN=' + key;
  }
  function openaiSettings(key) {
    return t('setup.baseUrl') + ': ' + origin() + '/openai/v1\n' + t('setup.apiKey') + ': ' + key + '\n\nexport OPENAI_BASE_URL=' + origin() + '/openai/v1\nexport OPENAI_API_KEY=' + key;
  }
  function showKey(panel, tn, how) {
    var key = tn.key;
    var code = el('code', { class: 'key', id: 'new-key', text: key });
    fill(panel, el('section', { class: 'card msg ok', id: 'key-card', role: 'status' },
      el('div', { class: 'card-head' }, el('h2', { text: t(how === 'rotated' ? 'key.rotated' : 'key.created', { name: tn.name || tn.id, id: tn.id }) }),
        el('button', { type: 'button', class: 'small', text: t('key.dismiss'), onclick: function () { fill(panel); } })),
      el('p', { text: t('key.once') }),
      el('p', null, code, ' ', copyButton(function () { return key; }, code)),
      snippet(t('setup.claudeEnv'), claudeEnv(key), 'new-claude-env'),
      snippet(t('setup.openai'), openaiSettings(key), 'new-openai')));
    panel.scrollIntoView({ block: 'start' });
  }
  function renderTenants(body, tenants, keyPanel, reload) {
    if (!tenants.length) { fill(body, el('div', { class: 'empty', text: t('tenants.none') })); return; }
    var editor = el('div', { id: 'edit-panel' });
    var rows = tenants.slice().sort(function (a, b) { return String(a.id).localeCompare(String(b.id)); }).map(function (tn) {
      var expired = tn.expiresAt && new Date(tn.expiresAt) < new Date();
      var status = !tn.enabled ? badge(t('tenants.disabled'), 'bad') : expired ? badge(t('tenants.expired'), 'warn') : badge(t('tenants.enabled'), 'ok');
      var actions = el('td', { class: 'actions' });
      var u = tn.usage || {};
      function act(label, cls, fn) { return el('button', { type: 'button', class: 'small ' + cls, 'data-action': cls, text: label, onclick: fn }); }
      function failed(err) { fill(actions, el('span', { class: 'msg error', role: 'alert', text: err.message }), ' ', act(t('form.cancel'), 'cancel', reload)); }
      function confirmThen(question, label, fn) {
        fill(actions, el('span', { class: 'confirm', text: question }), ' ', act(label, 'confirm danger', fn), act(t('form.cancel'), 'cancel', function () { fill(actions, normal()); }));
      }
      function normal() {
        if (tn.source === 'file') {
          return act(t('tenants.import'), 'import', function () {
            api('POST', '/api/admin/tenants/' + encodeURIComponent(tn.id) + '/import').then(reload, failed);
          });
        }
        return [
          act(tn.enabled ? t('tenants.disable') : t('tenants.enable'), 'toggle', function () {
            api('PATCH', '/api/admin/tenants/' + encodeURIComponent(tn.id), { enabled: !tn.enabled }).then(reload, failed);
          }),
          act(t('tenants.edit'), 'edit', function () {
            fill(editor, el('section', { class: 'card', id: 'edit-card' }, el('h2', { text: t('tenants.editing', { id: tn.id }) }),
              tenantForm(tn, function () { fill(editor); reload(); }, function () { fill(editor); })));
            editor.scrollIntoView({ block: 'start' });
          }),
          act(t('tenants.rotate'), 'rotate', function () {
            confirmThen(t('tenants.rotateConfirm'), t('tenants.rotate'), function () {
              api('POST', '/api/admin/tenants/' + encodeURIComponent(tn.id) + '/rotate').then(function (r) { showKey(keyPanel, r, 'rotated'); reload(); }, failed);
            });
          }),
          act(t('tenants.delete'), 'delete danger', function () {
            confirmThen(t('tenants.deleteConfirm', { id: tn.id }), t('tenants.delete'), function () {
              api('DELETE', '/api/admin/tenants/' + encodeURIComponent(tn.id)).then(reload, failed);
            });
          })
        ];
      }
      fill(actions, normal());
      return el('tr', { 'data-id': tn.id, 'data-source': tn.source },
        el('td', { class: 'l', text: tn.id }),
        el('td', { class: 'l wrap', text: tn.name || '' }),
        el('td', { class: 'l', title: tn.source === 'file' ? t('tenants.fileNote') : null },
          badge(t('source.' + tn.source) === 'source.' + tn.source ? String(tn.source) : t('source.' + tn.source)),
          tn.served === false ? el('div', { class: 'note', text: tn.note || t('tenants.notServed') }) : null),
        el('td', { class: 'l' }, status),
        el('td', { class: 'l wrap', text: (tn.allowedModels || []).join(', ') || '—' }),
        el('td', { class: 'l' }, miniLimits(tn)),
        el('td', { class: 'l', text: tn.expiresAt ? when(tn.expiresAt) : t('tenants.never') }),
        el('td', { class: 'l', text: tn.keyHint || '—' }),
        el('td', { text: usd((u.today || {}).costUSD) }),
        el('td', { text: usd((u.month || {}).costUSD) }),
        actions);
    });
    fill(body, editor, table(['col.id', 'col.name', 'col.source', 'col.status', 'col.models', 'col.limits', 'col.expires', 'col.key', 'col.today', 'col.month', 'col.actions']
      .map(function (k, i) { return { label: t(k), l: i < 8 || i === 10 }; }), rows));
  }

  // ---- request log (admin: every tenant; tenant: its own) ----
  function requestLog(sec, url, admin, pageSize, upstreams, tenants) {
    // A request id picked elsewhere (a trust flag's evidence) opens the log filtered to it.
    var f = { tenant: '', model: '', upstream: '', status: '', from: '', to: '', request: S.logRequest || '', limit: String(pageSize) };
    S.logRequest = null;
    var cursors = [null];
    var inputs = {};
    function input(name, label, node) {
      node.id = 'rq-' + name; inputs[name] = node;
      node.addEventListener('change', function () { f[name] = node.value.trim(); });
      return el('div', { class: 'f' }, el('label', { for: node.id, text: label }), node);
    }
    var csv = el('a', { class: 'button', id: 'rq-csv', text: t('log.csv'), download: 'ccgate-requests.csv' });
    var older = el('button', { type: 'button', id: 'rq-older', text: t('log.older') });
    var newer = el('button', { type: 'button', id: 'rq-newer', text: t('log.newer') });
    var filters = el('form', { class: 'toolbar', id: 'rq-filters', novalidate: true },
      admin ? input('tenant', t('col.tenant'), el('input', { type: 'text', spellcheck: 'false', list: 'rq-tenants' })) : null,
      admin ? el('datalist', { id: 'rq-tenants' }, (tenants || []).map(function (tn) { return el('option', { value: tn.id, text: tn.name || tn.id }); })) : null,
      input('model', t('col.model'), el('input', { type: 'text', spellcheck: 'false' })),
      admin ? input('upstream', t('col.upstream'), el('select', null, el('option', { value: '', text: t('log.any') }),
        (upstreams || []).map(function (u) { return el('option', { value: u.id, text: u.name || u.id }); }))) : null,
      input('status', t('col.status'), el('input', { type: 'text', placeholder: '429, 5xx', size: 6 })),
      input('from', t('log.from'), el('input', { type: 'date' })),
      input('to', t('log.to'), el('input', { type: 'date' })),
      input('request', t('log.request'), el('input', { type: 'text', spellcheck: 'false', size: 14, value: f.request })),
      input('limit', t('log.pageSize'), el('select', null, ['20', '50', '100', '500'].map(function (n) { return el('option', { value: n, text: n, selected: n === f.limit }); }))),
      el('button', { type: 'submit', class: 'primary', text: t('log.apply') }),
      el('button', { type: 'button', text: t('log.reset'), onclick: function () {
        Object.keys(inputs).forEach(function (k) { inputs[k].value = k === 'limit' ? String(pageSize) : ''; f[k] = inputs[k].value; });
        cursors = [null]; load();
      } }));
    filters.addEventListener('submit', function (e) {
      e.preventDefault();
      Object.keys(inputs).forEach(function (k) { f[k] = inputs[k].value.trim(); });
      cursors = [null]; load();
    });
    var out = el('div', { id: 'rq-table' });
    var pager = el('div', { class: 'form-actions' }, newer, older, csv, el('span', { class: 'muted', id: 'rq-page' }));
    older.addEventListener('click', function () { if (older.nextCursor) { cursors.push(older.nextCursor); load(); } });
    newer.addEventListener('click', function () { if (cursors.length > 1) { cursors.pop(); load(); } });
    fill(sec.body, filters, out, pager);
    function params(extra) {
      var p = {}; Object.keys(f).forEach(function (k) { p[k] = f[k]; });
      p.cursor = cursors[cursors.length - 1];
      Object.keys(extra || {}).forEach(function (k) { p[k] = extra[k]; });
      return qs(p);
    }
    if (!admin) {
      // The tenant's key is a header, which a link cannot send: fetch the CSV and hand it over as a file.
      csv.addEventListener('click', function (e) {
        e.preventDefault();
        fetch(url + params({ format: 'csv' }), { headers: { 'x-api-key': S.key }, cache: 'no-store' }).then(function (r) { return r.blob(); }).then(function (b) {
          var a = el('a', { href: URL.createObjectURL(b), download: 'ccgate-requests.csv' });
          document.body.appendChild(a); a.click(); a.remove();
          setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
        });
      });
    }
    function load() {
      if (admin) csv.href = url + params({ format: 'csv' });
      return settle(sec, api('GET', url + params()).then(function (r) {
        var rows = r.requests || [];
        older.nextCursor = r.nextCursor || null;
        older.disabled = !r.nextCursor; newer.disabled = cursors.length <= 1;
        $('rq-page') && ($('rq-page').textContent = t('log.page', { n: cursors.length, count: rows.length }));
        renderRequests(out, rows, admin);
      }));
    }
    sec.load = load;
    return sec;
  }
  function renderRequests(out, rows, admin) {
    if (!rows.length) { fill(out, el('div', { class: 'empty', text: t('log.none') })); return; }
    var cols = [['col.time', true], admin ? ['col.tenant', true] : null, ['col.model', true], admin ? ['col.upstream', true] : null, ['col.api', true], ['col.status', false],
      ['col.input', false], ['col.output', false], ['col.cacheWrite', false], ['col.cacheRead', false], ['col.cost', false], ['col.latency', false], ['col.ttft', false], ['col.error', true]]
      .filter(Boolean).map(function (c) { return { label: t(c[0]), l: c[1] }; });
    fill(out, table(cols, rows.map(function (r) {
      var ok = r.status >= 200 && r.status < 300;
      return el('tr', { 'data-id': r.id, 'data-request-id': r.request_id, 'data-tenant': admin ? r.tenant_id : null },
        el('td', { class: 'l', text: stamp(r.time || r.ts_ms), title: when(r.time || r.ts_ms) }),
        admin ? el('td', { class: 'l', text: r.tenant_id }) : null,
        el('td', { class: 'l', text: r.model, title: r.upstream_model && r.upstream_model !== r.model ? '→ ' + r.upstream_model : null }),
        admin ? el('td', { class: 'l', text: r.upstream_id || '—' }) : null,
        el('td', { class: 'l', text: r.protocol + (r.stream ? ' · stream' : '') }),
        el('td', null, badge(String(r.status), ok ? 'ok' : r.status >= 500 ? 'bad' : 'warn')),
        el('td', { text: num(r.input_tokens) }),
        el('td', { text: num(r.output_tokens) }),
        el('td', { text: num((r.cache_write_5m_tokens || 0) + (r.cache_write_1h_tokens || 0)) }),
        el('td', { text: num(r.cache_read_tokens) }),
        el('td', { text: usd(r.cost_usd) }),
        el('td', { text: ms(r.latency_ms) }),
        el('td', { text: ms(r.ttft_ms) }),
        el('td', { class: 'l wrap', text: r.error_class || (ok ? '' : r.outcome || '') }));
    }), t('log.title')));
  }
  function requestsView() {
    var v = newView();
    var sec = card('requests', t('log.title'));
    fill(v, sec);
    // The filters offer the upstreams and tenants there are; the log loads without them if they fail.
    var list = function (path, key) { return api('GET', path).then(function (r) { return r[key] || []; }, function () { return []; }); };
    Promise.all([list('/api/admin/upstreams', 'upstreams'), list('/api/admin/tenants', 'tenants')]).then(function (x) {
      requestLog(sec, '/api/admin/requests', true, 50, x[0], x[1]).load();
    });
  }

  // ---- tenant portal ----
  function portalView(preloaded) {
    var v = newView();
    var stats = el('section', { class: 'stats', id: 'stats', 'aria-label': t('stat.title') });
    var limits = card('limits', t('portal.limits'));
    var ch = chartCard('/api/tenant/usage', ['model']);
    var models = card('models', t('portal.models'));
    var recent = card('recent', t('portal.recent'));
    var setup = card('setup', t('setup.title'));
    var refresh = el('button', { type: 'button', id: 'refresh', text: t('portal.refresh'), onclick: function () { route(); } });
    fill(v, el('div', { class: 'form-actions' }, refresh), stats, limits, ch, models, recent, setup);
    var status = preloaded ? Promise.resolve(preloaded) : api('GET', '/api/tenant/status');
    settle(limits, status.then(function (s) {
      fill(limits.body, limitsList(s.limits),
        el('p', { class: 'note', text: s.expiresAt ? t('portal.expires', { at: when(s.expiresAt) }) : t('portal.noExpiry') }));
    }));
    settle(stats, periodStats('/api/tenant/usage', 'model', stats).then(function (month) {
      settle(models, Promise.resolve().then(function () {
        if (!month) throw new Error(t('stat.unavailable'));
        var groups = (month.groups || []).slice().sort(function (a, b) { return (b.totals.costUSD || 0) - (a.totals.costUSD || 0); });
        if (!groups.length) { fill(models.body, el('div', { class: 'empty', text: t('portal.noModels') })); return; }
        fill(models.body, table([{ label: t('col.model'), l: true }, { label: t('col.requests') }, { label: t('col.input') }, { label: t('col.output') },
          { label: t('col.cacheRead') }, { label: t('col.cost') }], groups.map(function (g) {
          var x = g.totals || {};
          return el('tr', { 'data-key': g.key }, el('td', { class: 'l', text: g.key }), el('td', { text: num(x.requests) }), el('td', { text: num(x.inputTokens) }),
            el('td', { text: num(x.outputTokens) }), el('td', { text: num(x.cacheReadTokens) }), el('td', { text: usd(x.costUSD) }));
        })), el('div', { class: 'note', text: t('portal.last30') }));
      }));
    }));
    ch.load();
    requestLog(recent, '/api/tenant/requests', false, 20).load();
    fill(setup.body, setupSnippets(S.key));
    setup.setAttribute('data-state', 'ready');
  }
  function setupSnippets(key) {
    var o = origin();
    var statusLine = JSON.stringify({ statusLine: { type: 'command',
      command: 'curl -fsS -m 3 -H "x-api-key: ${ANTHROPIC_AUTH_TOKEN:-$ANTHROPIC_API_KEY}" "' + o + '/api/tenant/status?format=line"' } }, null, 2);
    return [
      el('p', { class: 'note', text: t('setup.lead') }),
      snippet(t('setup.claudeEnv'), claudeEnv(key), 'setup-claude'),
      el('p', { class: 'note', text: t('setup.apiKeyAlt') }),
      snippet(t('setup.statusLine'), statusLine, 'setup-statusline'),
      snippet(t('setup.openai'), openaiSettings(key), 'setup-openai'),
      snippet(t('setup.codex'), 'model_provider = "ccgate"\n\n[model_providers.ccgate]\nname = "CCGate"\nbase_url = "' + o + '/openai/v1"\nenv_key = "CCGATE_API_KEY"\nwire_api = "responses"\n\n# ' + t('setup.codexEnv') + '\n# export CCGATE_API_KEY=' + key, 'setup-codex'),
      snippet(t('setup.pyAnthropic'), 'from anthropic import Anthropic\n\nclient = Anthropic(base_url="' + o + '/anthropic", api_key="' + key + '")\nmsg = client.messages.create(model="claude-sonnet-4-5", max_tokens=256,\n                             messages=[{"role": "user", "content": "Hello"}])\nprint(msg.content[0].text)', 'setup-py-anthropic'),
      snippet(t('setup.pyOpenai'), 'from openai import OpenAI\n\nclient = OpenAI(base_url="' + o + '/openai/v1", api_key="' + key + '")\nr = client.chat.completions.create(model="claude-sonnet-4-5",\n                                   messages=[{"role": "user", "content": "Hello"}])\nprint(r.choices[0].message.content)', 'setup-py-openai')
    ];
  }

  // ---- start ----
  function init() {
    $('tab-tenant').addEventListener('click', function () { selectTab('tenant'); loginError(''); });
    $('tab-admin').addEventListener('click', function () { selectTab('admin'); loginError(''); });
    $('tab-tenant').parentNode.addEventListener('keydown', function (e) {
      if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
      var next = $('tab-tenant').getAttribute('aria-selected') === 'true' ? 'admin' : 'tenant';
      selectTab(next); $('tab-' + next).focus(); e.preventDefault();
    });
    $('panel-admin').addEventListener('submit', adminLogin);
    $('panel-tenant').addEventListener('submit', tenantLogin);
    $('logout').addEventListener('click', logout);
    $('lang').addEventListener('change', function () {
      var lang = $('lang').value;
      store(localStorage, 'set', LANG_STORE, lang);
      loadLang(lang).then(function () {
        if (S.mode === 'admin') whoami(t('who.admin', { user: S.user || 'admin' }));
        else if (S.mode === 'tenant') whoami(t('who.tenant', { name: S.tenant && S.tenant.name !== S.tenant.id ? S.tenant.name + ' (' + S.tenant.id + ')' : String((S.tenant || {}).id || '') }));
        route();
      });
    });
    window.addEventListener('hashchange', function () { if (S.mode === 'admin') route(); });
    var lang = pickLang();
    return loadLang(lang).catch(function () { return lang === 'en' ? null : loadLang('en'); }).then(function () {
      // /dashboard is the tenants' entry (the original's); the admin path opens on the admin tab.
      var tenantFirst = /^\/dashboard\/?$/.test(location.pathname);
      selectTab(tenantFirst ? 'tenant' : 'admin');
      var key = store(sessionStorage, 'get', KEY_STORE);
      if (key) return tryTenant(key);
      return fetch('/api/admin/session', { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
        if (!r.ok) throw new Error('no session');
        return r.json();
      }).then(startAdmin, function () { showLogin(tenantFirst ? 'tenant' : 'admin'); });
    });
  }

  // For tests: set once the script has loaded; `ready` once the first screen is shown.
  window.CCGateConsole = { ready: false };
  init().then(function () { window.CCGateConsole.ready = true; }, function (e) {
    window.CCGateConsole.ready = true;
    var b = $('banner'); b.textContent = String(e && e.message || e); b.hidden = false; $('login').hidden = false;
  });
})();
