// The shop's checkout page: the client side of idempotency.
//
// A checkout is sent with an Idempotency-Key; the service makes exactly one
// order per key. This page makes one key per checkout and keeps it, with the
// lines it was made for, until the checkout's outcome is known for certain:
// the order was confirmed, the key was abandoned, or a refusal answered the
// only request ever sent with it. A double click, a lost answer, a timeout, a
// 503, a reload, a closed tab or a second tab can therefore never turn one
// intent into two orders.
//
// When the answer never comes, the page does not guess. It keeps the key
// ("your last order attempt"), offers "Check again" (what became of the
// key; if nothing is recorded, the same checkout again, same key), and when
// the person changes the cart and presses "Place order", it first settles
// the old key (POST /v1/checkouts/{key}/abandon): either that order exists
// (it is shown, and the changed cart is kept as a new cart, not ordered) or
// it never will. The press that settles never places anything.
//
// Plain JavaScript, no dependencies, nothing loaded from elsewhere: the page
// works offline on a LAN. Served by order-service at /shop (embedded in the
// binary).
'use strict';

const MAX_ATTEMPTS = 6;
const REQUEST_TIMEOUT_MS = 10000;
/** Another tab's checkout counts as in flight this long after its last attempt began. */
const IN_FLIGHT_MS = REQUEST_TIMEOUT_MS + 10000;

const state = {
  token: null,
  /** Whose page this is: { tenant, sub } from the token. */
  who: null,
  products: new Map(),
  /** sku -> quantity. A Map: any SKU is a key, `constructor` and `__proto__` too. */
  cart: new Map(),
  /** This tab is sending a checkout or finding out what became of one. */
  busy: false,
  /** The cart was kept after the previous attempt turned out placed: not ordered. */
  kept: false,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- storage
// The token: sessionStorage, one tab's memory (kept across reloads, gone
// with the tab). The cart and the checkout in progress: localStorage, per
// (tenant, customer), so that a reload, a closed and reopened tab and a
// second tab all see the same cart and the same unresolved checkout.
const tab = {
  get(name) {
    try { return JSON.parse(sessionStorage.getItem(name)); } catch { return null; }
  },
  set(name, value) { sessionStorage.setItem(name, JSON.stringify(value)); },
  drop(name) { sessionStorage.removeItem(name); },
};

/** This tab's id: survives a reload of the tab, not a new tab. */
function tabId() {
  let id = tab.get('tab');
  if (typeof id !== 'string') {
    id = uuidV4();
    tab.set('tab', id);
  }
  return id;
}

function scoped(name) {
  return `store-orders:${JSON.stringify([state.who.tenant, state.who.sub])}:${name}`;
}

const shared = {
  get(name) {
    try { return JSON.parse(localStorage.getItem(scoped(name))); } catch { return null; }
  },
  set(name, value) { localStorage.setItem(scoped(name), JSON.stringify(value)); },
  drop(name) { localStorage.removeItem(scoped(name)); },
};

function isLine(line) {
  return Array.isArray(line) && line.length === 2 && typeof line[0] === 'string'
    && Number.isInteger(line[1]) && line[1] > 0 && line[1] <= 10000;
}

function loadCart() {
  const lines = shared.get('cart');
  state.cart = new Map(Array.isArray(lines) ? lines.filter(isLine) : []);
  state.kept = shared.get('kept') === true;
}

function saveCart() {
  shared.set('cart', cartLines());
  if (state.kept && state.cart.size > 0) {
    shared.set('kept', true);
  } else {
    state.kept = false;
    shared.drop('kept');
  }
}

/** The cart as the checkout sends it: [sku, quantity] pairs in SKU order. */
function cartLines() {
  return [...state.cart].filter(([, quantity]) => quantity > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const sameLines = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// ---------------------------------------------------------- the key
// AUDIT-106: Idempotency key
// The checkout in progress: { key, lines, state, owner, at }. Made when
// "Place order" is pressed with no checkout in progress, before the first
// request; `state` is `sending` while a tab sends it (`owner`, `at`: which
// tab, since when) and `unresolved` once the outcome is unknown. It is
// dropped only when the outcome is certain. Every retry, every tab and
// every reload uses its key: no second key is ever made for it.
function pending() {
  const record = shared.get('checkout');
  if (!record || typeof record.key !== 'string' || !Array.isArray(record.lines)
      || !record.lines.every(isLine)) {
    return null;
  }
  return record;
}

/** Another tab is sending the checkout in progress right now. */
function sentElsewhere(record) {
  return record !== null && record.state === 'sending' && record.owner !== tabId()
    && Date.now() - record.at < IN_FLIGHT_MS;
}

function locked() {
  return state.busy || sentElsewhere(pending());
}

/** A random UUIDv4 (crypto.getRandomValues works on plain http too). */
function uuidV4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ------------------------------------------------------------------- API
/** One request; throws on a network error or a timeout. */
async function api(method, path, { body, key } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (key) {
      headers['Idempotency-Key'] = key;
      headers['Order-Channel'] = 'shop'; // recorded with the order
    }
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
      cache: 'no-store',
    });
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    return { status: response.status, data };
  } finally {
    clearTimeout(timer);
  }
}

const retryable = (answer) => !answer || answer.status === 429 || answer.status >= 500;

/** A key's route: one path segment, or `?key=` for `.` and `..`. */
function checkoutPath(key, abandon) {
  if (key === '.' || key === '..') {
    return `/v1/checkouts${abandon ? '/abandon' : ''}?key=${encodeURIComponent(key)}`;
  }
  return `/v1/checkouts/${encodeURIComponent(key)}${abandon ? '/abandon' : ''}`;
}

// ----------------------------------------------------------------- money
function money(minor, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / 10 ** digits);
  } catch {
    return `${minor} ${currency}`;
  }
}

const nameOf = (sku) => (state.products.get(sku) || { name: sku }).name;

function describe(lines) {
  return lines.map(([sku, quantity]) => `${quantity} × ${nameOf(sku)}`).join(', ');
}

// ---------------------------------------------------------------- status
function say(text, kind = '') {
  const status = $('status');
  status.textContent = text;
  status.className = kind;
}

function notice(text) {
  $('notice').textContent = text || '';
  $('notice').hidden = !text;
}

// ---------------------------------------------------------------- render
function render() {
  renderProducts();
  renderCart();
  renderPending();
  const record = pending();
  const isLocked = locked();
  const lines = cartLines();
  for (const control of document.querySelectorAll('#products button, #products input, #cart button, #cart input')) {
    control.disabled = isLocked;
  }
  $('cart-lock').hidden = !isLocked;
  $('cart-lock').textContent = sentElsewhere(record) && !state.busy
    ? 'Your order is being placed in another tab or window: the cart is locked until we know whether it went through.'
    : 'Your cart is locked until we know whether your order went through.';
  const place = $('place-order');
  place.disabled = isLocked || lines.length === 0;
  place.setAttribute('aria-busy', state.busy ? 'true' : 'false');
  $('check-again').disabled = isLocked;
  $('cart-new').hidden = !state.kept || lines.length === 0;
}

function renderPending() {
  const record = pending();
  const box = $('pending');
  if (!record || record.state !== 'unresolved') {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const list = $('pending-lines');
  list.replaceChildren();
  for (const [sku, quantity] of record.lines) {
    const item = document.createElement('li');
    item.textContent = `${quantity} × ${nameOf(sku)}`;
    list.append(item);
  }
  $('pending-text').textContent = sameLines(record.lines, cartLines())
    ? 'We could not find out whether this went through. “Check again” asks the shop; if it was not placed, it places it (it cannot order twice).'
    : 'We could not find out whether this went through. You changed your cart: when you press “Place order”, we first find out what became of this attempt, and order nothing else until we know.';
}

// -------------------------------------------------------------- products
async function loadProducts() {
  const products = [];
  let after = null;
  do {
    const query = after ? `?limit=100&after=${encodeURIComponent(after)}` : '?limit=100';
    const answer = await api('GET', `/v1/products${query}`);
    if (answer.status === 401) return signOut('Your sign-in is not valid any more.');
    if (answer.status !== 200) throw new Error(`products: ${answer.status}`);
    products.push(...answer.data.products);
    after = answer.data.next;
  } while (after);
  state.products = new Map(products.map((p) => [p.sku, p]));
  render();
  return undefined;
}

function renderProducts() {
  const list = $('products');
  list.replaceChildren();
  for (const product of state.products.values()) {
    const item = document.createElement('li');
    item.dataset.sku = product.sku;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = product.name;
    const price = document.createElement('span');
    price.className = 'price';
    price.textContent = money(product.unit_price, product.currency);
    const stock = document.createElement('span');
    stock.className = product.on_hand > 0 ? 'stock' : 'stock out';
    stock.textContent = product.on_hand > 0 ? `${product.on_hand} in stock` : 'out of stock';
    const quantity = document.createElement('input');
    quantity.type = 'number';
    quantity.className = 'qty';
    quantity.min = '1';
    quantity.max = '10000';
    quantity.value = '1';
    quantity.setAttribute('aria-label', `Quantity of ${product.name}`);
    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'add';
    add.textContent = 'Add';
    add.setAttribute('aria-label', `Add ${product.name} to the cart`);
    add.addEventListener('click', () => {
      const n = Math.max(1, Math.min(10000, parseInt(quantity.value, 10) || 1));
      setQuantity(product.sku, (state.cart.get(product.sku) || 0) + n);
      say(`${n} × ${product.name} added to the cart.`);
    });
    item.append(name, price, stock, quantity, add);
    list.append(item);
  }
}

// ------------------------------------------------------------------ cart
function setQuantity(sku, quantity) {
  if (locked()) return;
  if (quantity > 0) {
    state.cart.set(sku, Math.min(10000, quantity));
  } else {
    state.cart.delete(sku);
  }
  saveCart();
  render();
}

function renderCart() {
  const list = $('cart');
  list.replaceChildren();
  const lines = cartLines();
  let total = 0;
  let currency = null;
  for (const [sku, quantity] of lines) {
    const product = state.products.get(sku);
    const label = product ? product.name : sku;
    const item = document.createElement('li');
    item.dataset.sku = sku;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = label;
    const input = document.createElement('input');
    input.type = 'number';
    input.min = '0';
    input.max = '10000';
    input.value = String(quantity);
    input.setAttribute('aria-label', `Quantity of ${label} in the cart`);
    input.addEventListener('change', () => {
      // An emptied or garbled field keeps the line; 0 (or Remove) drops it.
      const wanted = parseInt(input.value, 10);
      if (Number.isNaN(wanted) || wanted < 0) {
        input.value = String(state.cart.get(sku) || 0);
        return;
      }
      setQuantity(sku, wanted);
    });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'secondary remove';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove ${label} from the cart`);
    remove.addEventListener('click', () => setQuantity(sku, 0));
    item.append(name, input, remove);
    list.append(item);
    if (product) {
      total += product.unit_price * quantity;
      currency = product.currency;
    }
  }
  $('cart-empty').hidden = lines.length > 0;
  $('cart-total').textContent = currency ? `Total ${money(total, currency)}` : '';
}

// -------------------------------------------------------------- checkout
function backoff(attempt) {
  // Exponential with jitter: 0.4 s, 0.8 s, ... up to 8 s, each between half
  // and all of that, so that retrying pages do not arrive in step.
  const ceiling = Math.min(8000, 400 * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** "Place order". */
async function placeOrder() {
  if (locked()) return;
  const record = pending();
  const lines = cartLines();
  if (record) {
    // The last attempt's outcome is unknown: find it out before anything
    // else is ordered.
    if (sameLines(record.lines, lines)) {
      await checkAgain();
    } else {
      await settleFirst(record);
    }
    return;
  }
  if (lines.length === 0) return;
  $('placed').hidden = true;
  await send({ key: uuidV4(), lines, state: 'sending', owner: tabId(), at: Date.now() });
}

/** Sends `record`'s checkout, retrying with its key, until an answer. */
async function send(record) {
  state.busy = true;
  shared.set('checkout', { ...record, state: 'sending', owner: tabId(), at: Date.now() });
  render();
  say('Placing your order…', 'trying');
  const body = { lines: record.lines.map(([sku, quantity]) => ({ sku, quantity })) };
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    shared.set('checkout', { ...record, state: 'sending', owner: tabId(), at: Date.now() });
    let answer = null;
    try {
      answer = await api('POST', '/v1/checkout', { body, key: record.key });
    } catch {
      answer = null; // no answer: the order may or may not exist
    }
    if (answer && (answer.status === 201 || answer.status === 200)) {
      state.busy = false;
      placed(record, answer.data, '');
      return;
    }
    if (!retryable(answer)) {
      state.busy = false;
      refused(record, answer, attempt);
      return;
    }
    if (attempt < MAX_ATTEMPTS) {
      say(
        `Still trying… (attempt ${attempt + 1} of ${MAX_ATTEMPTS}). `
          + 'However many tries it takes, you will be charged for one order.',
        'trying',
      );
      await sleep(backoff(attempt));
    }
  }
  state.busy = false;
  unresolved(record, 'We could not reach the shop, so we do not know yet whether your order went through. '
    + 'Press “Check again” when you are back online: it cannot order twice.');
}

/** The outcome of `record` is unknown: keep its key, say so. */
function unresolved(record, message) {
  shared.set('checkout', { ...record, state: 'unresolved', owner: tabId(), at: Date.now() });
  render();
  say(message, 'error');
  $('check-again').focus();
}

/**
 * What became of `record`'s key: GET (safe) or POST .../abandon (settles it
 * for good). Retried like a checkout. Resolves to { placed: order },
 * { abandoned: true }, { none: true } (GET: nothing recorded) or
 * { unknown: why }.
 */
async function settle(record, abandon) {
  const path = checkoutPath(record.key, abandon);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    let answer = null;
    try {
      answer = await api(abandon ? 'POST' : 'GET', path);
    } catch {
      answer = null;
    }
    if (answer && answer.status === 200 && answer.data) {
      if (answer.data.state === 'placed' && answer.data.order) return { placed: answer.data.order };
      if (answer.data.state === 'abandoned') return { abandoned: true };
      return { unknown: `the shop says “${answer.data.state}”, which this page does not know` };
    }
    if (answer && answer.status === 404 && !abandon) return { none: true };
    if (answer && answer.status === 401) return { signedOut: true };
    if (!retryable(answer)) {
      return { unknown: (answer.data && answer.data.detail) || `the shop answered ${answer.status}` };
    }
    if (attempt < MAX_ATTEMPTS) await sleep(backoff(attempt));
  }
  return { unknown: 'we could not reach the shop' };
}

/** "Check again": what became of the last attempt; the same checkout again if nothing did. */
async function checkAgain() {
  const record = pending();
  if (!record || locked()) return;
  state.busy = true;
  render();
  say('Finding out whether your order went through…', 'trying');
  const outcome = await settle(record, false);
  state.busy = false;
  if (outcome.none) {
    await send(record);
    return;
  }
  settled(record, outcome);
}

/** The cart changed while the last attempt is unresolved: settle it first; order nothing. */
async function settleFirst(record) {
  state.busy = true;
  render();
  say('Before anything else is ordered, we are finding out what became of your last order attempt…', 'trying');
  const outcome = await settle(record, true);
  state.busy = false;
  settled(record, outcome);
}

/** Shows a settled outcome of `record` (never places anything). */
function settled(record, outcome) {
  if (outcome.placed) {
    const changed = !sameLines(record.lines, cartLines());
    placed(record, outcome.placed, changed
      ? ' Your changed cart has not been ordered: it is kept below as a new cart; press “Place order” to order it too.'
      : '');
    return;
  }
  if (outcome.abandoned) {
    shared.drop('checkout');
    render();
    say(
      `Your last order attempt (${describe(record.lines)}) was not placed, and it never will be. `
        + (cartLines().length > 0 ? 'Press “Place order” to order your cart.' : ''),
      'done',
    );
    refresh();
    return;
  }
  if (outcome.signedOut) {
    signOut('Your sign-in has expired: sign in again to find out what became of your order.');
    return;
  }
  unresolved(record, `We still do not know whether your last order attempt went through (${outcome.unknown}). `
    + 'Your order attempt is kept: press “Check again” in a moment.');
}

/** `record`'s checkout is an order. */
function placed(record, order, more) {
  shared.drop('checkout');
  const changed = !sameLines(record.lines, cartLines());
  if (changed) {
    state.kept = true;
  } else {
    state.cart = new Map();
  }
  saveCart();
  render();
  renderPlaced(order);
  say(`Your order ${order.order_number} was placed.${more}`, 'done');
  refresh();
}

function refused(record, answer, attempt) {
  const problem = answer.data || {};
  const slug = String(problem.type || '').split('/').pop();
  if (answer.status === 401) {
    shared.set('checkout', { ...record, state: 'unresolved', owner: tabId(), at: Date.now() });
    signOut('Your sign-in has expired: sign in again, your cart and your order attempt are kept.');
    return;
  }
  if (slug === 'checkout-abandoned') {
    // Settled elsewhere (another tab, or support): nothing was ordered.
    shared.drop('checkout');
    render();
    say(`This order attempt (${describe(record.lines)}) was settled without an order: nothing was ordered, and it never will be. `
      + 'Press “Place order” to order your cart.', 'error');
    refresh();
    return;
  }
  // A refusal stores nothing. It is this key's outcome for certain when no
  // earlier request with the key may still be on its way; otherwise the
  // key is kept, and settled before a new one is made.
  if (attempt === 1 || slug === 'idempotency-key-reused') {
    shared.drop('checkout');
  } else {
    shared.set('checkout', { ...record, state: 'unresolved', owner: tabId(), at: Date.now() });
  }
  render();
  if (slug === 'out-of-stock') {
    const available = problem.available ?? 0;
    say(
      available > 0
        ? `Only ${available} of ${nameOf(problem.sku)} left: you asked for ${problem.requested}. Change the quantity and place the order again.`
        : `${nameOf(problem.sku)} is out of stock: remove it to order the rest.`,
      'error',
    );
  } else if (slug === 'unknown-sku') {
    say(`${nameOf(problem.sku)} is no longer sold: remove it to order the rest.`, 'error');
  } else if (slug === 'idempotency-key-reused') {
    say('This checkout was already used for another order. Press “Place order” again.', 'error');
  } else {
    say(problem.detail || `The shop refused the order (${answer.status}).`, 'error');
  }
  refresh();
}

function renderPlaced(order) {
  $('placed-number').textContent = order.order_number;
  $('placed-status').textContent = order.status;
  const body = $('placed-lines');
  body.replaceChildren();
  for (const line of order.lines) {
    const row = document.createElement('tr');
    for (const text of [
      line.name,
      String(line.quantity),
      money(line.unit_price, order.currency),
      money(line.line_total, order.currency),
    ]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    body.append(row);
  }
  $('placed-total').textContent = money(order.total, order.currency);
  $('placed').hidden = false;
  $('placed').focus();
}

/** After every settled outcome: stock and "My orders" as they are now. */
function refresh() {
  loadProducts().catch(() => {});
  loadOrders().catch(() => {});
}

// ---------------------------------------------------------------- orders
async function loadOrders() {
  const answer = await api('GET', '/v1/orders?limit=20');
  if (answer.status !== 200) return;
  const list = $('orders');
  list.replaceChildren();
  for (const order of answer.data.orders) {
    const item = document.createElement('li');
    item.dataset.order = order.id;
    const when = new Date(order.placed_at).toLocaleString();
    item.textContent = `${order.order_number} · ${when} · ${order.status} · ${money(order.total, order.currency)}`;
    list.append(item);
  }
  if (answer.data.orders.length === 0) {
    const item = document.createElement('li');
    item.textContent = 'No orders yet.';
    list.append(item);
  }
}

// --------------------------------------------------------------- sign-in
/** The claims of a token, or null when it cannot be one of ours. */
function claimsOf(token) {
  try {
    const parts = String(token).split('.');
    if (parts.length !== 3) return null;
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
    if (typeof claims.sub !== 'string' || typeof claims.tenant !== 'string') return null;
    return claims;
  } catch {
    return null;
  }
}

const account = (claims) => `${claims.sub} at ${claims.tenant}`;

/**
 * `#token=...` is read here and removed from the address bar: a fragment is
 * never sent to a server, and is not kept in the history either. A token of
 * another account than the one signed in asks first; one that cannot be
 * read is said so.
 */
function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
  if (!match) return;
  window.history.replaceState(null, '', window.location.pathname + window.location.search);
  let token = null;
  try { token = decodeURIComponent(match[1]).trim(); } catch { token = null; }
  const claims = token && claimsOf(token);
  if (!claims) {
    notice('The sign-in link is not valid: its token cannot be read. Ask for a new link, or paste your token below.');
    return;
  }
  const current = claimsOf(tab.get('token'));
  if (current && (current.sub !== claims.sub || current.tenant !== claims.tenant)) {
    $('switch-text').textContent = `This link signs you in as ${account(claims)}. `
      + `You are signed in as ${account(current)} in this tab.`;
    $('switch-yes').textContent = `Switch to ${claims.sub}`;
    $('switch-no').textContent = `Stay signed in as ${current.sub}`;
    $('switch-account').hidden = false;
    $('switch-yes').onclick = () => {
      $('switch-account').hidden = true;
      tab.set('token', token);
      start();
    };
    $('switch-no').onclick = () => {
      $('switch-account').hidden = true;
    };
    return;
  }
  tab.set('token', token);
}

function signOut(message) {
  tab.drop('token');
  state.token = null;
  state.who = null;
  $('shop').hidden = true;
  $('sign-in').hidden = false;
  $('who').hidden = true;
  if (message) notice(message);
}

/** On a change by another tab (cart, checkout in progress): show it. */
function onStorage(event) {
  if (!state.who || state.busy || !event.key || !event.key.startsWith(scoped(''))) return;
  loadCart();
  render();
  if (event.key !== scoped('checkout')) return;
  const record = pending();
  if (!record) {
    say('Your order attempt was settled in another tab or window.', 'done');
    refresh();
  } else if (record.state === 'unresolved') {
    say('Your last attempt to place an order may have gone through. Press “Check again”: it cannot order twice.');
  } else if (sentElsewhere(record)) {
    say('Your order is being placed in another tab or window.', 'trying');
  }
}

async function start() {
  takeTokenFromFragment();
  const token = tab.get('token');
  const claims = claimsOf(token);
  if (!claims) {
    signOut();
    return;
  }
  state.token = token;
  state.who = { tenant: claims.tenant, sub: claims.sub };
  $('sign-in').hidden = true;
  $('shop').hidden = false;
  $('who').textContent = `${claims.sub} · ${claims.tenant}`;
  $('who').hidden = false;
  loadCart();
  const record = pending();
  if (record && !sentElsewhere(record) && record.state === 'sending') {
    // Sent by this tab before a reload, or by a tab that was closed: the
    // request died with it, its outcome is unknown.
    shared.set('checkout', { ...record, state: 'unresolved', owner: tabId(), at: Date.now() });
  }
  render();
  const now = pending();
  if (now && now.state === 'unresolved') {
    say('Your last attempt to place an order may have gone through. Press “Check again”: it cannot order twice.');
  } else if (sentElsewhere(now)) {
    say('Your order is being placed in another tab or window.', 'trying');
    // When that tab stops (or is gone), this one takes over.
    setTimeout(() => start(), IN_FLIGHT_MS);
  }
  try {
    await loadProducts();
    await loadOrders();
  } catch {
    say('The shop is not answering right now; reload the page in a moment.', 'error');
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (!claimsOf(token)) {
      notice('That is not a valid token: paste the whole token (three parts separated by dots).');
      return;
    }
    notice('');
    tab.set('token', token);
    start();
  });
  $('place-order').addEventListener('click', placeOrder);
  $('check-again').addEventListener('click', checkAgain);
  window.addEventListener('storage', onStorage);
  window.addEventListener('hashchange', () => start());
  start();
});
