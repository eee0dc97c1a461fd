import { Socket } from "socket.io";
import { listenToAny } from "../../protocols/connection";

/** The field listenToAny fills must be the one this Socket.IO version reads its catch-all listeners from. */
describe("listenToAny", () => {
  const bare = () => Object.create(Socket.prototype) as Socket;

  it("gives a socket's first catch-all listener a one-slot array that Socket.IO reads as its listeners", () => {
    const socket = bare();
    const listener = () => undefined;
    listenToAny(socket, listener);
    expect(socket.listenersAny()).toEqual([listener]);
    socket.offAny(listener);
    expect(socket.listenersAny()).toEqual([]);
  });

  it("adds to the listeners a socket has already, through onAny", () => {
    const socket = bare();
    const first = () => undefined;
    const second = () => undefined;
    socket.onAny(first);
    listenToAny(socket, second);
    expect(socket.listenersAny()).toEqual([first, second]);
  });
});
