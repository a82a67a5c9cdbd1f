"""The request path every front door shares, one module per step; `serve` runs them in
order. A front door (router/server/chat.py) only parses its request shape and renders its
answers (`door.FrontDoor`)."""
