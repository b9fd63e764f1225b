// Gallery: not built yet; the tab is hidden until it is.

export const panel = {
  name: "gallery",
  admin: false,
  init() {},
  enter() {},
  leave() {},
  show() {},
  hide() {},
};
