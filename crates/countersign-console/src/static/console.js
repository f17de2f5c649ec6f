// Countersign console: live updates. The page names its event stream in <body data-live>;
// on each `change` event it fetches itself again and replaces every [data-live-region]
// element by id. The decision form is replaced only when what can be decided changed
// (its data-key), so a comment being typed is not lost.
"use strict";
(function () {
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var busy = false, again = false;
  function note(text) {
    var n = document.getElementById("live-note");
    if (!n) {
      n = document.createElement("div");
      n.id = "live-note";
      n.className = "live-note";
      n.setAttribute("role", "status");
      document.body.appendChild(n);
    }
    n.textContent = text;
    setTimeout(function () { if (n.parentNode) n.parentNode.removeChild(n); }, 4000);
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var changed = false;
        doc.querySelectorAll("[data-live-region]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (!old) return;
          if (old.hasAttribute("data-key") && old.getAttribute("data-key") === fresh.getAttribute("data-key")) return;
          if (old.innerHTML !== fresh.innerHTML) {
            old.innerHTML = fresh.innerHTML;
            if (fresh.hasAttribute("data-key")) old.setAttribute("data-key", fresh.getAttribute("data-key"));
            changed = true;
          }
        });
        if (changed) {
          document.body.setAttribute("data-refreshed", String(Date.now()));
          note("Updated: someone decided");
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var source = new EventSource(url);
  source.addEventListener("change", function (e) {
    refresh();
    // A request stream ends once the request is closed: do not reconnect to it.
    if (e.data && isNaN(Number(e.data)) && e.data !== "pending") source.close();
  });
  source.addEventListener("open", function () { document.body.setAttribute("data-live-ready", "1"); });
})();

// Passkeys (WebAuthn). Buttons carry data-passkey="register" or data-passkey="vote"; the
// server begins a ceremony (its state stays on the server, bound to this person and, for a
// vote, to this request, digest and decision), the browser's authenticator answers, and the
// answer goes back as base64url JSON: registration by fetch, a vote by submitting the
// decision form, so a refusal is shown as a page with its code like any other.
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return { publicKey: pk };
  }
  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return { publicKey: pk };
  }
  function registration(c) {
    return {
      id: c.id, rawId: bufToB64url(c.rawId), type: c.type, extensions: {},
      response: {
        attestationObject: bufToB64url(c.response.attestationObject),
        clientDataJSON: bufToB64url(c.response.clientDataJSON),
      },
    };
  }
  function assertion(c) {
    var r = c.response;
    return {
      id: c.id, rawId: bufToB64url(c.rawId), type: c.type, extensions: {},
      response: {
        authenticatorData: bufToB64url(r.authenticatorData),
        clientDataJSON: bufToB64url(r.clientDataJSON),
        signature: bufToB64url(r.signature),
        userHandle: r.userHandle ? bufToB64url(r.userHandle) : null,
      },
    };
  }
  function post(url, fields) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
      body: new URLSearchParams(fields).toString(),
    }).then(function (r) {
      if (r.ok) return r.json();
      var code = r.headers.get("x-countersign-error") || String(r.status);
      return r.text().then(function (t) {
        var doc = new DOMParser().parseFromString(t, "text/html");
        var p = doc.querySelector("p.lead");
        throw new Error((p ? p.textContent : "Refused") + " (" + code + ")");
      });
    });
  }
  function show(button, text) {
    var out = document.getElementById(button.getAttribute("data-status") || "");
    if (out) { out.textContent = text; out.hidden = false; }
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("[data-passkey]") : null;
    if (!button) return;
    e.preventDefault();
    var form = button.form;
    var csrf = form.querySelector("input[name=csrf]").value;
    button.disabled = true;
    var done = function (err) { button.disabled = false; if (err) show(button, err.message || String(err)); };
    // Changing factors when one exists needs a current one: the code typed in the form, or
    // else (when the person has passkeys: data-confirm-begin) an assertion made first.
    var otpField = form.querySelector("input[name=otp]");
    var otp = otpField ? otpField.value.trim() : "";
    var confirmUrl = form.getAttribute("data-confirm-begin");
    var proof = function () {
      if (otp || !confirmUrl) return Promise.resolve(otp ? { otp: otp } : {});
      return post(confirmUrl, { csrf: csrf }).then(function (begun) {
        return navigator.credentials.get(requestOptions(begun.options)).then(function (c) {
          return { ceremony: begun.ceremony, credential: JSON.stringify(assertion(c)) };
        });
      });
    };
    if (button.getAttribute("data-passkey") === "confirm") {
      if (otp) { form.submit(); return; }
      proof().then(function (fields) {
        Object.keys(fields).forEach(function (name) {
          var i = document.createElement("input");
          i.type = "hidden"; i.name = name; i.value = fields[name];
          form.appendChild(i);
        });
        form.submit();
      }).catch(done);
      return;
    }
    if (button.getAttribute("data-passkey") === "register") {
      proof()
        .then(function (fields) {
          fields.csrf = csrf;
          return post("/console/mfa/passkeys/begin", fields);
        })
        .then(function (begun) {
          return navigator.credentials.create(creationOptions(begun.options)).then(function (c) {
            return post("/console/mfa/passkeys/finish", {
              csrf: csrf, ceremony: begun.ceremony, credential: JSON.stringify(registration(c)),
            });
          });
        })
        .then(function () { window.location.assign("/console/mfa?passkey=added"); }, done);
      return;
    }
    var decision = button.getAttribute("data-decision");
    var digest = form.querySelector("input[name=digest]").value;
    post(form.getAttribute("data-passkey-begin"), { csrf: csrf, digest: digest, decision: decision })
      .then(function (begun) {
        return navigator.credentials.get(requestOptions(begun.options)).then(function (c) {
          var add = function (name, value) {
            var i = document.createElement("input");
            i.type = "hidden"; i.name = name; i.value = value;
            form.appendChild(i);
          };
          var otp = form.querySelector("input[name=otp]");
          if (otp) otp.parentNode.removeChild(otp);
          add("decision", decision);
          add("ceremony", begun.ceremony);
          add("credential", JSON.stringify(assertion(c)));
          form.submit();
        });
      })
      .catch(done);
  });
})();
