// Opens Razorpay Checkout for the order on this page and posts its signed result back to
// our return URL. Options come from a json_script block, so the page needs no inline JS.
(function () {
  "use strict";
  var optionsEl = document.getElementById("rzp-options");
  var button = document.getElementById("rzp-pay");
  var form = document.getElementById("rzp-return");
  var status = document.getElementById("rzp-status");
  if (!optionsEl || !button || !form) return;

  function say(text) {
    if (status) status.textContent = text;
  }

  // The page's language: the template translates these into data attributes on #rzp-status.
  function message(name, english) {
    return (status && status.dataset[name]) || english;
  }

  if (typeof window.Razorpay !== "function") {
    say(message("unavailable", "The payment window could not load. Please check your connection and reload this page."));
    return;
  }

  var options = JSON.parse(optionsEl.textContent);
  options.handler = function (response) {
    form.elements.razorpay_payment_id.value = response.razorpay_payment_id || "";
    form.elements.razorpay_order_id.value = response.razorpay_order_id || "";
    form.elements.razorpay_signature.value = response.razorpay_signature || "";
    say(message("confirming", "Payment received. Confirming your booking…"));
    form.submit();
  };
  options.modal = {
    ondismiss: function () {
      button.disabled = false;
      say(message("closed", "The payment window was closed. Nothing has been charged; you can try again."));
    },
  };

  var checkout = new window.Razorpay(options);
  // Razorpay lets the client retry inside its window; we only explain what happened.
  // Razorpay's reason for a failure is in English: read on English pages only, not dropped
  // into a Hindi sentence.
  var english = (document.documentElement.lang || "en").split("-")[0] === "en";
  checkout.on("payment.failed", function (response) {
    var reason = english && response && response.error && response.error.description;
    say((reason || message("failed", "The payment did not go through.")) + " " + message("retry", "You can try again with another method."));
  });

  button.addEventListener("click", function () {
    button.disabled = true;
    say("");
    checkout.open();
  });
  button.disabled = false;
})();
