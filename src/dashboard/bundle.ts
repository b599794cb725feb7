/**
 * Joins the page's compiled modules (CommonJS, as tsc emits all of this project) into one
 * classic script: each runs in a function of its own, given its `exports` and a `require` that
 * finds the modules joined before it by their relative name ("./common"). A handful of files
 * need no bundler; the CSP allows no inline script, and the pages load no ES module.
 */
export function bundleModules(modules: { name: string; code: string }[]): string {
  const parts = modules.map(({ name, code }) => {
    const key = JSON.stringify(`./${name}`);
    // their source maps would point into nothing: the lines moved
    const body = code.replace(/^\/\/# sourceMappingURL=.*$/m, "");
    return `modules[${key}] = {};\n(function (exports, require) {\n${body}\n})(modules[${key}], require);`;
  });
  return `(function () {
"use strict";
const modules = {};
function require(name) {
  if (!(name in modules)) throw new Error("the dashboard's script bundles no module " + name);
  return modules[name];
}
${parts.join("\n")}
})();
`;
}
