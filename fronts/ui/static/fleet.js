// A virtualised list: only the rows in view (and a few around them) exist
// in the DOM, so 10,000 nodes cost as much to draw as 30. Rows are kept and
// filled again as the list scrolls.

const overscan = 8;

export class VirtualList {
  // make() builds an empty row element; fill(row, id) writes node id into it.
  constructor({ viewport, spacer, rows, rowHeight, make, fill }) {
    Object.assign(this, { viewport, spacer, rows, rowHeight, make, fill });
    this.ids = [];
    this.pool = [];
    this.first = 0;
    this.scheduled = false;
    viewport.addEventListener('scroll', () => this.schedule());
    window.addEventListener('resize', () => this.schedule());
  }

  setItems(ids) {
    this.ids = ids;
    this.spacer.style.height = `${ids.length * this.rowHeight}px`;
    this.draw();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  draw() {
    const h = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - overscan);
    const count = Math.min(this.ids.length - first, Math.ceil(h / this.rowHeight) + 2 * overscan);
    while (this.pool.length < count) {
      const row = this.make();
      this.pool.push(row);
      this.rows.appendChild(row);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      if (i < count) {
        row.hidden = false;
        this.fill(row, this.ids[first + i]);
      } else {
        row.hidden = true;
        row.dataset.node = '';
      }
    }
    this.first = first;
    this.rows.style.transform = `translateY(${first * this.rowHeight}px)`;
  }

  // redraw fills the row of node id again when it is in view.
  redraw(id) {
    for (const row of this.pool) {
      if (!row.hidden && row.dataset.node === id) this.fill(row, id);
    }
  }
}
