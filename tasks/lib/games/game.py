"""Two-player grid games where k pieces in a line win: tic-tac-toe and connect four.

A position is a pair of bitboards `(x, o)` as Python ints, one bit per cell, cell
`row * cols + col` with row 0 at the top (the order of the text form). `x` always moves first,
so the side to move follows from the piece counts and needs no storing. With `gravity` an
action is a column and the piece drops to the lowest empty cell; without it an action is a cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

Position = tuple[int, int]
PIECES = "xo."


@dataclass(frozen=True)
class Game:
    name: str
    rows: int
    cols: int
    connect: int
    gravity: bool

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def n_actions(self) -> int:
        return self.cols if self.gravity else self.cells

    @cached_property
    def lines(self) -> tuple[int, ...]:
        """Bitmasks of every line of `connect` cells: rows, columns and both diagonals."""
        masks = []
        for r in range(self.rows):
            for c in range(self.cols):
                for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    end_r, end_c = r + dr * (self.connect - 1), c + dc * (self.connect - 1)
                    if 0 <= end_r < self.rows and 0 <= end_c < self.cols:
                        masks.append(
                            sum(
                                1 << ((r + dr * i) * self.cols + c + dc * i)
                                for i in range(self.connect)
                            )
                        )
        return tuple(masks)

    @property
    def full(self) -> int:
        return (1 << self.cells) - 1

    def start(self) -> Position:
        return (0, 0)

    def ply(self, pos: Position) -> int:
        return pos[0].bit_count() + pos[1].bit_count()

    def to_move(self, pos: Position) -> int:
        """0 when x moves, 1 when o moves."""
        return self.ply(pos) % 2

    def has_line(self, bits: int) -> bool:
        return any(bits & line == line for line in self.lines)

    def winner(self, pos: Position) -> int:
        """+1 if x has a line, -1 if o has, 0 otherwise."""
        return 1 if self.has_line(pos[0]) else -1 if self.has_line(pos[1]) else 0

    def terminal(self, pos: Position) -> bool:
        return self.winner(pos) != 0 or (pos[0] | pos[1]) == self.full

    def outcome(self, pos: Position) -> int:
        """A terminal position's result from the view of the side to move: the last mover won
        (-1) or it is a draw (0); the side to move can never have just won."""
        return -1 if self.winner(pos) else 0

    def drop_cell(self, occupied: int, col: int) -> int | None:
        """The cell a piece dropped in `col` lands on, or None if the column is full."""
        for r in range(self.rows - 1, -1, -1):
            cell = r * self.cols + col
            if not occupied >> cell & 1:
                return cell
        return None

    def legal(self, pos: Position) -> list[int]:
        """Legal actions, in increasing order; none once the game is over."""
        if self.terminal(pos):
            return []
        occupied = pos[0] | pos[1]
        if self.gravity:
            return [c for c in range(self.cols) if not occupied >> c & 1]
        return [i for i in range(self.cells) if not occupied >> i & 1]

    def play(self, pos: Position, action: int) -> Position:
        occupied = pos[0] | pos[1]
        cell = self.drop_cell(occupied, action) if self.gravity else action
        if cell is None or occupied >> cell & 1:
            raise ValueError(f"{self.name}: illegal action {action} in\n{self.text(pos)}")
        bit = 1 << cell
        return (pos[0] | bit, pos[1]) if self.to_move(pos) == 0 else (pos[0], pos[1] | bit)

    def key(self, pos: Position) -> int:
        """One int per position (x bits, then o bits): solver tables are indexed by it."""
        return pos[0] | pos[1] << self.cells

    def from_key(self, key: int) -> Position:
        return (key & self.full, key >> self.cells)

    def text(self, pos: Position) -> str:
        """One character per cell, row by row from the top: x, o or '.'."""
        return "".join(
            "x" if pos[0] >> i & 1 else "o" if pos[1] >> i & 1 else "." for i in range(self.cells)
        )

    def parse(self, text: str) -> Position:
        """The position of a text board; raises ValueError naming what is wrong with it."""
        if not isinstance(text, str) or len(text) != self.cells or set(text) - set(PIECES):
            raise ValueError(
                f"{self.name}: a board is {self.cells} characters of x, o and '.', "
                f"row by row from the top ({self.rows} rows of {self.cols})"
            )
        x = sum(1 << i for i, ch in enumerate(text) if ch == "x")
        o = sum(1 << i for i, ch in enumerate(text) if ch == "o")
        return (x, o)

    @cached_property
    def symmetries(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """(cell permutation, action permutation) pairs, identity first: a symmetric copy of a
        position has `cells[perm]`; its policy is `policy[action_perm]`. Mirror for gravity
        games; the 8 symmetries of the square for a square board without gravity."""
        grid = np.arange(self.cells).reshape(self.rows, self.cols)
        views = [grid, grid[:, ::-1]]
        if not self.gravity and self.rows == self.cols:
            views = [np.rot90(v, k) for v in views for k in range(4)]
        pairs = []
        for view in views:
            cell_perm = view.reshape(-1).copy()
            action_perm = view[0].copy() if self.gravity else cell_perm
            pairs.append((cell_perm, action_perm))
        return tuple(pairs)

    def planes(self, x: np.ndarray, o: np.ndarray) -> np.ndarray:
        """The network's input, defined here only: arrays of x and o bitboards (any integer
        dtype) -> (N, 2, cells) float32 0/1, the mover's pieces, then the opponent's (x moves
        when both have as many). Seen from the mover, one network plays both sides."""
        # uint64 throughout: solver keys are uint64, and numpy refuses to shift them by int64.
        x, o = np.asarray(x).astype(np.uint64), np.asarray(o).astype(np.uint64)
        x_moves = np.bitwise_count(x | o) % 2 == 0
        sides = np.stack([np.where(x_moves, x, o), np.where(x_moves, o, x)], axis=1)
        shifts = np.arange(self.cells, dtype=np.uint64)
        return ((sides[:, :, None] >> shifts) & np.uint64(1)).astype(np.float32)

    def legal_mask(self, positions: list[Position]) -> np.ndarray:
        """(N, n_actions) bool: which actions are legal in each position."""
        mask = np.zeros((len(positions), self.n_actions), dtype=bool)
        for n, pos in enumerate(positions):
            mask[n, self.legal(pos)] = True
        return mask

    def phase(self, ply: int) -> str:
        """Evaluation slice: opening, middle or end, by thirds of the board's cells."""
        third = self.cells / 3
        return "opening" if ply < third else "middle" if ply < 2 * third else "end"


def bitboards(positions: list[Position]) -> tuple[np.ndarray, np.ndarray]:
    """The x and o bitboards of `positions` as uint64 arrays, the form `Game.planes` takes."""
    x, o = (np.array([pos[side] for pos in positions], dtype=np.uint64) for side in (0, 1))
    return x, o


TICTACTOE = Game("tictactoe", rows=3, cols=3, connect=3, gravity=False)


@cache  # one Game per board size, so its cached lines and symmetries are computed once
def connect4(rows: int = 4, cols: int = 5) -> Game:
    return Game("connect4", rows=rows, cols=cols, connect=4, gravity=True)
