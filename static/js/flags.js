// The flag queue: choosing "Change a guideline" and a category puts that category's
// current guideline in the text box, to be edited rather than retyped.
(function () {
  "use strict";
  document.querySelectorAll("form.resolve").forEach((form) => {
    const select = form.querySelector("select[name=category]");
    const text = form.querySelector("textarea[name=guideline]");
    function fill() {
      const action = form.querySelector("input[name=action]:checked");
      const option = select.selectedOptions[0];
      if (!action || action.value !== "guideline" || !option || !option.value || text.dataset.edited) return;
      text.value = option.dataset.guideline || "";
    }
    select.addEventListener("change", fill);
    form.querySelectorAll("input[name=action]").forEach((input) => input.addEventListener("change", fill));
    text.addEventListener("input", () => { text.dataset.edited = "1"; });
  });
})();
