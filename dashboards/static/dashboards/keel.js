// Keel pages: draw server-built plotly figures, auto-submit filters, confirm dialogs, live project events.
(function () {
  "use strict";

  function drawCharts(root) {
    (root || document).querySelectorAll(".chart[data-figure]").forEach(function (div) {
      var source = document.getElementById(div.dataset.figure);
      if (!source || !window.Plotly) return;
      var fig = JSON.parse(source.textContent);
      window.Plotly.newPlot(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
    });
    // Figures that are expensive to compute load after the page (e.g. spend by user from raw calls).
    (root || document).querySelectorAll(".chart[data-figure-url]").forEach(function (div) {
      fetch(div.dataset.figureUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (fig) {
          div.innerHTML = "";
          window.Plotly.newPlot(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
        })
        .catch(function () { div.innerHTML = '<p class="empty">Could not load this chart.</p>'; });
    });
  }

  function autoSubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  }

  function confirmDialogs() {
    document.querySelectorAll("[data-open-dialog]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var dialog = document.getElementById(button.dataset.openDialog);
        if (dialog) dialog.showModal();
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    document.querySelectorAll("dialog [data-close]").forEach(function (button) {
      button.addEventListener("click", function (event) { event.preventDefault(); button.closest("dialog").close(); });
    });
  }

  // Custom-weight reroute: show the running total; Confirm is enabled only by a valid preview of these weights.
  function weightForms() {
    document.querySelectorAll("form[data-weights-form]").forEach(function (form) {
      var total = form.querySelector("[data-weight-total]");
      var confirm = form.querySelector("button[type=submit]");
      var target = form.querySelector("[data-preview]");
      function update() {
        var sum = 0;
        form.querySelectorAll("input.weight").forEach(function (input) { sum += parseFloat(input.value) || 0; });
        total.textContent = Math.round(sum * 100) / 100;
        total.className = Math.abs(sum - 100) > 0.01 ? "bad" : "ok";
      }
      form.querySelectorAll("input.weight").forEach(function (input) {
        input.addEventListener("input", function () { confirm.disabled = true; update(); });
      });
      form.querySelector("[data-preview-button]").addEventListener("click", function () {
        confirm.disabled = true;
        fetch(form.dataset.previewUrl, { method: "POST", body: new FormData(form), credentials: "same-origin" })
          .then(function (r) { return r.text().then(function (html) { return { ok: r.ok, html: html }; }); })
          .then(function (res) { target.innerHTML = res.html; confirm.disabled = !res.ok; })
          .catch(function () { target.innerHTML = '<p class="form-error">Could not load the preview.</p>'; });
      });
      update();
    });
  }

  // Live events: the server pushes {kind, data}; pages declare what to refresh with data-live-refresh.
  function liveEvents() {
    var target = document.querySelector("[data-live-url]");
    if (!target) return;
    var indicator = document.getElementById("live-indicator");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var delay = 1000;
    function refresh(event) {
      var url = target.dataset.liveRefresh;
      if (!url) return;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          target.innerHTML = html;
          var id = event && event.data && event.data.id;
          if (id) {
            var row = target.querySelector('[data-alert-id="' + id + '"]');
            if (row) row.classList.add("flash");
          }
        })
        .catch(function () {});
    }
    function connect() {
      var socket = new WebSocket(scheme + location.host + target.dataset.liveUrl);
      socket.onopen = function () { delay = 1000; if (indicator) indicator.classList.add("on"); document.body.dataset.live = "on"; };
      socket.onmessage = function (message) {
        var event = JSON.parse(message.data);
        var kinds = (target.dataset.liveKinds || "").split(",");
        if (kinds.some(function (k) { return k && event.kind.indexOf(k) === 0; })) refresh(event);
      };
      socket.onclose = function () {
        if (indicator) indicator.classList.remove("on");
        document.body.dataset.live = "off";
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    autoSubmit();
    confirmDialogs();
    weightForms();
    liveEvents();
  });
})();
