from fastloss.cli import main

raise SystemExit(main())
