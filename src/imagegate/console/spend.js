// Spend: not built yet; the tab is hidden until it is.

export const panel = {
  name: "spend",
  admin: true,
  init() {},
  enter() {},
  leave() {},
  show() {},
  hide() {},
};
