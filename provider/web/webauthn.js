// oidcgate's only script: the security-key and passkey buttons (WebAuthn).
// Served from the provider's own origin under its CSP (script-src 'self').
// Every page works without it; its buttons simply stay hidden then.
"use strict";
(() => {
  if (!window.PublicKeyCredential || !navigator.credentials) return;
  const dec = (s) => {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(s + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  };
  const enc = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const creation = (o) => {
    const k = o.publicKey;
    k.challenge = dec(k.challenge);
    k.user.id = dec(k.user.id);
    (k.excludeCredentials || []).forEach((c) => { c.id = dec(c.id); });
    return o;
  };
  const request = (o) => {
    const k = o.publicKey;
    k.challenge = dec(k.challenge);
    (k.allowCredentials || []).forEach((c) => { c.id = dec(c.id); });
    return o;
  };
  const answer = (c) => {
    const r = c.response;
    const out = {
      id: c.id, rawId: enc(c.rawId), type: c.type,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: enc(r.clientDataJSON) },
    };
    if (c.authenticatorAttachment) out.authenticatorAttachment = c.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = enc(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = enc(r.authenticatorData);
      out.response.signature = enc(r.signature);
      if (r.userHandle) out.response.userHandle = enc(r.userHandle);
    }
    return out;
  };
  const post = async (url, body) => {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error_description || "the server answered " + r.status);
    return j;
  };
  for (const btn of document.querySelectorAll("button[data-webauthn]")) {
    btn.hidden = false;
    btn.addEventListener("click", async () => {
      const d = btn.dataset;
      const err = document.getElementById("webauthn-error");
      const base = { interaction: d.interaction || "", csrf: d.csrf };
      if (d.nameInput) base.name = document.getElementById(d.nameInput).value;
      btn.disabled = true;
      if (err) err.hidden = true;
      try {
        const opts = await post(d.begin, base);
        if (opts.location) { location.assign(opts.location); return; }
        const c = d.webauthn === "create"
          ? await navigator.credentials.create(creation(opts))
          : await navigator.credentials.get(request(opts));
        const done = await post(d.finish, { ...base, credential: answer(c) });
        location.assign(done.location);
      } catch (e) {
        if (err) { err.textContent = e.message; err.hidden = false; }
        btn.disabled = false;
      }
    });
  }
})();
