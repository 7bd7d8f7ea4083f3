// Copy buttons: <button class="copy" data-copy="text">Copy</button>
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  event.preventDefault();
  var text = button.getAttribute("data-copy");
  var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); }
  else { var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area); area.select();
         document.execCommand("copy"); document.body.removeChild(area); done(); }
});
